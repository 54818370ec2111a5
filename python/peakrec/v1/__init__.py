"""Generated protobuf and gRPC code for peakrec.v1 (`make protos`); do not edit."""
