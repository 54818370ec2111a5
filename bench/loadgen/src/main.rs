//! Open-loop gRPC load generator: request i is sent at `start + i/rate` whatever the server
//! answers, round-robin over `--connections` separate HTTP/2 connections; request bodies are
//! pre-serialised bytes sent as-is and reply bodies are never parsed. Prints one JSON object.
//!
//!   loadgen --target 127.0.0.1:50051 --method /peakrec.v1.Recommender/Storefront \
//!           --payloads FILE --rate 6000 --seconds 8 --deadline-ms 100 --connections 8 \
//!           [--threads 1] [--warmup-seconds 1] [--throttle-k K]
//!
//! `--in-flight N` instead of `--rate`: a closed loop of N calls outstanding (a new call as soon as
//! one is answered), which measures capacity when N is below what the server admits.
//!
//! `--throttle-k K` makes the generator behave like clients that throttle themselves as
//! peakrec.Client does (adaptive throttling, Google SRE book): a call is refused locally, counted as
//! THROTTLED and never sent, with probability max(0, (requests - K * accepts) / (requests + 1))
//! over the last 10 s, where accepts are the calls the server answered other than
//! RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED. The rule mirrors python/peakrec/service/throttle.py.
//!
//! FILE holds serialised request messages, each prefixed by its 4-byte little-endian length.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut};
use serde_json::json;
use tokio::io::{unix::AsyncFd, Interest};
use tokio::time::Instant;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{http::uri::PathAndQuery, Bytes};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

/// A codec that writes the request bytes unchanged and skips the reply bytes.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self {
        RawCodec
    }
    fn decoder(&mut self) -> Self {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = ();
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, Status> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}

/// A one-shot timer on a Linux timerfd, awaited through tokio's reactor. tokio's own timer works
/// in 1 ms ticks and wakes up to ~2 ms late, which would make most sends late; this one is
/// accurate to tens of microseconds and still lets the (single) runtime thread serve replies.
struct PreciseTimer(AsyncFd<OwnedFd>);

impl PreciseTimer {
    fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the fd returned (if valid) is owned by us from here on.
        let fd = unsafe {
            libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC)
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh valid descriptor that only this AsyncFd owns and closes.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self(unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE)? }))
    }

    async fn sleep_until(&self, t: Instant) -> io::Result<()> {
        let d = t.saturating_duration_since(Instant::now());
        if d.is_zero() {
            return Ok(());
        }
        let mut spec: libc::itimerspec = unsafe { std::mem::zeroed() };
        spec.it_value.tv_sec = d.as_secs() as libc::time_t;
        spec.it_value.tv_nsec = d.subsec_nanos() as libc::c_long;
        let fd = self.0.get_ref().as_raw_fd();
        // SAFETY: valid fd and a fully initialised itimerspec.
        if unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        loop {
            let mut guard = self.0.readable().await?;
            let mut expirations = [0u8; 8];
            let read = guard.try_io(|fd| {
                // SAFETY: reads 8 bytes into an 8-byte buffer.
                let n = unsafe { libc::read(fd.as_raw_fd(), expirations.as_mut_ptr().cast(), 8) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            if let Ok(res) = read {
                return res;
            }
        }
    }
}

/// Sleeps end this long after the next send is due, so that at high rates one wake-up sends a
/// few requests (at 15k/s this cut the generator's CPU by ~25%); it stays well under the 1 ms
/// that counts as a late send.
const SLACK: Duration = Duration::from_micros(250);

/// Client-side adaptive throttling over ten one-second buckets (see the module doc).
struct Throttle {
    k: f64,
    second: [u64; 10],
    requests: [u64; 10],
    accepts: [u64; 10],
    rng: u64, // xorshift64 state
}

impl Throttle {
    fn new(k: f64) -> Self {
        Throttle {
            k,
            second: [u64::MAX; 10],
            requests: [0; 10],
            accepts: [0; 10],
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    fn slot(&mut self, now: u64) -> usize {
        let i = (now % 10) as usize;
        if self.second[i] != now {
            (self.second[i], self.requests[i], self.accepts[i]) = (now, 0, 0);
        }
        i
    }

    /// Counts a call about to be made; false if the client refuses it itself.
    fn admit(&mut self, now: u64) -> bool {
        let i = self.slot(now);
        let live = |s: u64| s != u64::MAX && s + 10 > now;
        let (mut requests, mut accepts) = (0u64, 0u64);
        for j in 0..10 {
            if live(self.second[j]) {
                requests += self.requests[j];
                accepts += self.accepts[j];
            }
        }
        self.requests[i] += 1;
        let p = (requests as f64 - self.k * accepts as f64) / (requests as f64 + 1.0);
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        p <= 0.0 || (self.rng >> 11) as f64 / (1u64 << 53) as f64 >= p
    }

    fn accepted(&mut self, now: u64) {
        let i = self.slot(now);
        self.accepts[i] += 1;
    }
}

/// Outcomes of the calls sent in the measured window (warm-up calls are only counted in `done`).
#[derive(Default)]
struct Stats {
    done: u64, // every finished call, warm-up included (to know when all have come back)
    codes: BTreeMap<&'static str, u64>,
    ok_ms: Vec<f64>,
    refused_ms: Vec<f64>, // RESOURCE_EXHAUSTED + UNAVAILABLE
    details: BTreeMap<String, u64>,
}

/// The canonical gRPC name of a status code, as reported in `codes`.
fn code_name(c: Code) -> &'static str {
    #[rustfmt::skip]
    const NAMES: [&str; 17] = [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(c as usize).copied().unwrap_or("UNKNOWN")
}

/// CPU time (user + system, seconds) this process has used so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// An error and its sources on one line ("transport error: tcp connect error: Connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s = format!("{s}: {inner}");
        src = inner.source();
    }
    s
}

/// Nearest-rank percentiles of latencies in ms (all zero when there are none).
fn percentiles(v: &mut [f64]) -> serde_json::Value {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| match v.len() {
        0 => 0.0,
        n => v[((q * n as f64).ceil() as usize).clamp(1, n) - 1],
    };
    json!({"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": at(1.0)})
}

const USAGE: &str = "usage: loadgen --target HOST:PORT --payloads FILE --rate PER_S \
[--method /pkg.Service/Method] [--seconds 10] [--deadline-ms 100] [--connections 8] \
[--threads 1] [--warmup-seconds 1] [--throttle-k K] [--in-flight N instead of --rate]";

struct Args {
    target: String,
    method: String,
    payloads: String,
    rate: f64,
    seconds: f64,
    deadline: Duration,
    connections: usize,
    threads: usize,
    warmup: f64,
    throttle_k: Option<f64>,
    in_flight: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut m: HashMap<String, String> = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "-h" || k == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let key = k.strip_prefix("--").ok_or(format!("unexpected argument {k:?}"))?;
        let v = it.next().ok_or(format!("--{key} needs a value"))?;
        m.insert(key.to_string(), v);
    }
    let in_flight: Option<usize> = match m.remove("in-flight") {
        Some(n) => Some(n.parse().map_err(|_| format!("--in-flight: bad number {n:?}"))?),
        None => None,
    };
    let mut get = |k: &str, default: Option<&str>| -> Result<String, String> {
        m.remove(k).or(default.map(String::from)).ok_or(format!("--{k} is required"))
    };
    fn num<T: std::str::FromStr>(k: &str, s: String) -> Result<T, String> {
        s.parse().map_err(|_| format!("--{k}: bad number {s:?}"))
    }
    let a = Args {
        target: get("target", None)?,
        method: get("method", Some("/peakrec.v1.Recommender/Storefront"))?,
        payloads: get("payloads", None)?,
        in_flight,
        rate: num("rate", get("rate", in_flight.map(|_| "1"))?)?,
        seconds: num("seconds", get("seconds", Some("10"))?)?,
        deadline: Duration::from_secs_f64(
            num::<f64>("deadline-ms", get("deadline-ms", Some("100"))?)? / 1e3,
        ),
        connections: num("connections", get("connections", Some("8"))?)?,
        threads: num("threads", get("threads", Some("1"))?)?,
        warmup: num("warmup-seconds", get("warmup-seconds", Some("1"))?)?,
        throttle_k: match m.remove("throttle-k") {
            Some(k) => Some(num("throttle-k", k)?),
            None => None,
        },
    };
    if let Some(k) = m.keys().next() {
        return Err(format!("unknown option --{k}"));
    }
    if !(a.rate > 0.0 && a.seconds > 0.0 && a.warmup >= 0.0 && !a.deadline.is_zero()) {
        return Err("--rate, --seconds and --deadline-ms must be > 0, --warmup-seconds >= 0".into());
    }
    if a.throttle_k.is_some_and(|k| k.is_nan() || k < 1.0) {
        return Err("--throttle-k must be >= 1".into());
    }
    if a.connections == 0 || a.threads == 0 {
        return Err("--connections and --threads must be >= 1".into());
    }
    Ok(a)
}

/// Splits the payload file into its length-prefixed messages.
fn read_payloads(path: &str) -> Result<Vec<Bytes>, String> {
    let data = std::fs::read(path).map_err(|e| format!("--payloads {path}: {e}"))?;
    let (mut out, mut rest) = (Vec::new(), &data[..]);
    while !rest.is_empty() {
        let n = rest.len().ge(&4).then(|| rest.get_u32_le() as usize);
        match n {
            Some(n) if n <= rest.len() => {
                out.push(Bytes::copy_from_slice(&rest[..n]));
                rest = &rest[n..];
            }
            _ => return Err(format!("--payloads {path}: truncated length-prefixed message")),
        }
    }
    if out.is_empty() {
        return Err(format!("--payloads {path}: no messages"));
    }
    Ok(out)
}

async fn run(a: Args, payloads: Vec<Bytes>) -> Result<serde_json::Value, String> {
    let path = PathAndQuery::try_from(a.method.as_str()).map_err(|e| format!("--method: {e}"))?;
    // One Endpoint::connect per connection = one HTTP/2 connection (one TCP socket) each.
    let mut clients = Vec::new();
    for _ in 0..a.connections {
        let ep = Endpoint::from_shared(format!("http://{}", a.target))
            .map_err(|e| format!("--target {}: {e}", a.target))?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .buffer_size(64 * 1024); // the Channel's request queue; never the bottleneck
        let ch: Channel = ep
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {}: {}", a.target, chain(&e)))?;
        clients.push(tonic::client::Grpc::new(ch));
    }

    if let Some(n) = a.in_flight {
        return Ok(closed(&a, n, clients, payloads, path).await);
    }
    let stats = Arc::new(Mutex::new(Stats::default()));
    let throttle = a.throttle_k.map(|k| Arc::new(Mutex::new(Throttle::new(k))));
    let interval = 1.0 / a.rate;
    let warm_n = (a.warmup * a.rate).round() as u64; // calls before this index are not counted
    let total = warm_n + (a.seconds * a.rate).round() as u64;
    let (mut late_sends, mut max_late) = (0u64, Duration::ZERO);
    let timer = PreciseTimer::new().map_err(|e| format!("timerfd: {e}"))?;
    let start = Instant::now();
    let mut i = 0u64;
    while i < total {
        // Send every request whose time has come; sleep only when the next one is not yet due.
        let due = start + Duration::from_secs_f64(i as f64 * interval);
        let now = Instant::now();
        if due > now {
            timer.sleep_until(due + SLACK).await.map_err(|e| format!("timerfd: {e}"))?;
            continue;
        }
        let measured = i >= warm_n;
        if measured {
            max_late = max_late.max(now - due);
            late_sends += u64::from(now - due > Duration::from_millis(1));
        }
        let start_second = move |t: Instant| t.duration_since(start).as_secs();
        if let Some(t) = &throttle {
            if !t.lock().unwrap().admit(start_second(now)) {
                let mut st = stats.lock().unwrap();
                st.done += 1;
                if measured {
                    *st.codes.entry("THROTTLED").or_default() += 1;
                }
                i += 1;
                continue;
            }
        }
        let throttle = throttle.clone();
        let mut client = clients[i as usize % clients.len()].clone();
        let payload = payloads[i as usize % payloads.len()].clone();
        let (path, stats, deadline) = (path.clone(), stats.clone(), a.deadline);
        tokio::spawn(async move {
            let call = async {
                client.ready().await.map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
                let mut req = Request::new(payload);
                req.set_timeout(deadline); // sends grpc-timeout
                client.unary::<_, (), _>(req, path, RawCodec).await
            };
            // Client-side bound too: no answer by the deadline counts as DEADLINE_EXCEEDED.
            // Latency is measured from the scheduled send time (open-loop convention).
            let res = tokio::time::timeout_at(due + deadline, call).await;
            let ms = due.elapsed().as_secs_f64() * 1e3;
            let status = match res {
                Ok(Ok(_)) => None,
                // tonic's channel also enforces grpc-timeout itself (until the reply headers) and
                // reports that as CANCELLED "Timeout expired": it is our deadline too.
                Ok(Err(s)) if s.code() == Code::Cancelled && s.message() == "Timeout expired" => {
                    Some(Status::deadline_exceeded("client-side deadline"))
                }
                Ok(Err(s)) => Some(s),
                Err(_) => Some(Status::deadline_exceeded("client-side deadline")),
            };
            let code = status.as_ref().map_or(Code::Ok, |s| s.code());
            if let Some(t) = &throttle {
                if !matches!(code, Code::ResourceExhausted | Code::DeadlineExceeded) {
                    t.lock().unwrap().accepted(start_second(Instant::now()));
                }
            }
            let mut st = stats.lock().unwrap();
            st.done += 1;
            if !measured {
                return;
            }
            *st.codes.entry(code_name(code)).or_default() += 1;
            match code {
                Code::Ok => st.ok_ms.push(ms),
                Code::ResourceExhausted | Code::Unavailable => st.refused_ms.push(ms),
                _ => {}
            }
            if let Some(s) = status {
                let key: String = s.message().chars().take(60).collect();
                if st.details.len() < 20 || st.details.contains_key(&key) {
                    *st.details.entry(key).or_default() += 1;
                }
            }
        });
        i += 1;
    }
    // Every call ends by its deadline; wait for them all (with a generous cap).
    let give_up = Instant::now() + a.deadline + Duration::from_secs(5);
    while stats.lock().unwrap().done < total && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut st = stats.lock().unwrap();
    let offered = total - warm_n;
    let answered: u64 = st.codes.values().sum();
    if answered < offered {
        st.codes.insert("NOT_FINISHED", offered - answered);
    }
    Ok(report(&mut st, offered, a.seconds, late_sends, max_late))
}

/// The one JSON object printed for a run.
fn report(
    st: &mut Stats,
    offered: u64,
    seconds: f64,
    late_sends: u64,
    max_late: Duration,
) -> serde_json::Value {
    json!({
        "offered": offered,
        "seconds": seconds,
        "codes": st.codes,
        "ok_ms": percentiles(&mut st.ok_ms),
        "refused_ms": percentiles(&mut st.refused_ms),
        "details": st.details,
        "late_sends": late_sends,
        "max_late_ms": max_late.as_secs_f64() * 1e3,
        "cpu_seconds": cpu_seconds(), // whole run, warm-up and connecting included
    })
}

/// `--in-flight N`: N loops, each sending its next call when the last is answered.
async fn closed(
    a: &Args,
    n: usize,
    clients: Vec<tonic::client::Grpc<Channel>>,
    payloads: Vec<Bytes>,
    path: PathAndQuery,
) -> serde_json::Value {
    let stats = Arc::new(Mutex::new(Stats::default()));
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(a.warmup);
    let end = measure_from + Duration::from_secs_f64(a.seconds);
    let loops: Vec<_> = (0..n)
        .map(|j| {
            let (mut client, payloads) = (clients[j % clients.len()].clone(), payloads.clone());
            let (path, stats, deadline) = (path.clone(), stats.clone(), a.deadline);
            tokio::spawn(async move {
                let mut i = j;
                while Instant::now() < end {
                    let sent = Instant::now();
                    let mut req = Request::new(payloads[i % payloads.len()].clone());
                    req.set_timeout(deadline);
                    i += n;
                    let res = match client.ready().await {
                        Ok(()) => client.unary::<_, (), _>(req, path.clone(), RawCodec).await,
                        Err(e) => Err(Status::unavailable(format!("not ready: {e}"))),
                    };
                    if sent < measure_from {
                        continue;
                    }
                    let mut st = stats.lock().unwrap();
                    let code = res.as_ref().map_or_else(|s| s.code(), |_| Code::Ok);
                    *st.codes.entry(code_name(code)).or_default() += 1;
                    if code == Code::Ok {
                        st.ok_ms.push(sent.elapsed().as_secs_f64() * 1e3);
                    }
                }
            })
        })
        .collect();
    for l in loops {
        let _ = l.await;
    }
    let mut st = stats.lock().unwrap();
    let offered: u64 = st.codes.values().sum();
    report(&mut st, offered, a.seconds, 0, Duration::ZERO)
}

fn main() {
    let fail = |msg: String| -> ! {
        eprintln!("loadgen: {msg}");
        std::process::exit(2);
    };
    let a = parse_args().unwrap_or_else(|e| fail(e));
    let payloads = read_payloads(&a.payloads).unwrap_or_else(|e| fail(e));
    let rt = if a.threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(a.threads).enable_all().build()
    };
    let rt = rt.unwrap_or_else(|e| fail(format!("runtime: {e}")));
    match rt.block_on(run(a, payloads)) {
        Ok(out) => println!("{out}"),
        Err(e) => fail(e),
    }
}
