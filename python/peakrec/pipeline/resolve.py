"""Stage 1: resolve the shopper into a query vector and the facts later stages need."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from peakrec.config import LIFECYCLE, RankingConfig
from peakrec.errors import InvalidInputError
from peakrec.features import FeatureHasher
from peakrec.pipeline.types import Shopper


@dataclass(slots=True)
class Resolved:
    """Who the page is for. ``query`` is float32[1, d], or None when nothing is known."""

    query: np.ndarray | None
    cold: bool
    user_row: int
    region: int
    lifecycle: str
    segments: int  # bit s = in vocab segments[s]
    member_brands: np.ndarray  # int brand indices
    recent_rows: np.ndarray  # int64 item rows of the recent items that exist
    purchased_rows: np.ndarray  # int64 item rows


class ShopperResolver:
    """Per-bundle look-ups for resolving shoppers; built once at load."""

    def __init__(self, bundle, config: RankingConfig):
        self.bundle = bundle
        self.config = config
        # Plain ndarray views of the mapped columns: indexing a np.memmap costs ~5 us a call.
        self.users = SimpleNamespace(**{k: np.asarray(v) for k, v in vars(bundle.users).items()})
        self.vectors = np.asarray(bundle.items.vectors)
        self.dim = int(self.vectors.shape[1])
        cold = bundle.manifest.get("coldstart", {})
        self.hasher = FeatureHasher(
            n_features=int(cold.get("n_features", bundle.coldstart_table.shape[0])),
            input_type=cold.get("input_type", "string"),
            alternate_sign=bool(cold.get("alternate_sign", True)),
        )
        self.pooling = cold.get("pooling", "mean")
        self.brand_index = {name: i for i, name in enumerate(bundle.vocab["brands"])}
        self.segment_index = {name: i for i, name in enumerate(bundle.vocab.get("segments", []))}
        self.lifecycle_names = list(bundle.vocab.get("lifecycle", LIFECYCLE))
        # A dict over the few hundred region codes: cheaper per request than a numpy look-up.
        self.region_codes = {code: i for i, code in enumerate(bundle.vocab["regions"])}
        sorted_ids = getattr(bundle.users, "ids_sorted", None)
        self._user_ids_sorted = None if sorted_ids is None else np.asarray(sorted_ids)
        self._user_ids_order = np.asarray(getattr(bundle.users, "ids_order", []))
        uv = self.users.vectors
        # Whether each user's stored memberships are sorted and unique (then a request without
        # its own member brands uses them as they are; checked once here, not per request).
        m = self.users.memberships
        m_ptr = np.asarray(self.users.memberships_indptr, dtype=np.int64)
        self._memberships_int64 = m.dtype == np.int64
        increasing = np.diff(m.astype(np.int64, copy=False)) > 0
        starts = m_ptr[(m_ptr > 0) & (m_ptr < len(m))]
        increasing[starts - 1] = True  # a new user's list may start lower
        self._memberships_unique = bool(increasing.all())
        self._user_vectors_ready = uv.dtype == np.float32 and uv.ndim == 2 and uv.flags.c_contiguous

    def user_row(self, user_id: str) -> int:
        """Row of ``user_id``, -1 if unknown: one binary search over ``users/ids_sorted.npy`` with a
        scalar (a third of the cost of the bundle's array look-up, which serves many ids at once)."""
        ids = self._user_ids_sorted
        if ids is None:
            return self.bundle.user_row(user_id)
        if ids.dtype.kind == "U" and len(user_id) > ids.dtype.itemsize // 4:
            return -1  # longer than every stored id (and searching would widen the whole column)
        pos = int(ids.searchsorted(user_id))
        if pos < len(ids) and ids[pos] == user_id:
            return int(self._user_ids_order[pos])
        return -1

    def region_of(self, shopper: Shopper, user_row: int) -> int:
        code = shopper.region or shopper.context.get("region", "")
        if code:
            region = self.region_codes.get(code, -1)
            if region < 0:
                raise InvalidInputError(f"shopper.region: unknown region code {code!r}")
            return region
        if user_row >= 0:
            return int(self.users.region[user_row])
        raise InvalidInputError("shopper.region: required when the user is unknown")

    def resolve(self, shopper: Shopper, vector=None) -> Resolved:
        users = self.users
        user_row = self.user_row(shopper.user_id) if shopper.user_id else -1
        region = self.region_of(shopper, user_row)
        if shopper.recent_items:
            recent = self.bundle.item_rows(list(shopper.recent_items))
            recent = recent[recent >= 0]
        else:
            recent = _NO_ROWS

        segments = 0
        lifecycle = "awareness"
        brand_index = self.brand_index
        members = [brand_index[b] for b in shopper.member_brands if b in brand_index]
        member_brands = None
        purchased = _NO_ROWS
        if user_row >= 0:
            segments = int(users.segments[user_row])
            stage = int(users.lifecycle[user_row])
            if 0 <= stage < len(self.lifecycle_names):
                lifecycle = self.lifecycle_names[stage]
            indptr = users.memberships_indptr
            lo, hi = indptr[user_row], indptr[user_row + 1]
            if hi > lo:
                if not members and self._memberships_unique:
                    member_brands = users.memberships[lo:hi]  # sorted and unique already
                    if not self._memberships_int64:
                        member_brands = member_brands.astype(np.int64)
                else:
                    members.extend(users.memberships[lo:hi].tolist())
            indptr = users.purchased_indptr
            lo, hi = indptr[user_row], indptr[user_row + 1]
            if hi > lo:
                purchased = np.asarray(users.purchased[lo:hi], dtype=np.int64)
        context = shopper.context
        if context:
            context_segment = context.get("segment")
            if context_segment in self.segment_index:
                segments |= 1 << self.segment_index[context_segment]
            if context.get("lifecycle") in LIFECYCLE:
                lifecycle = context["lifecycle"]

        if member_brands is None:
            # sorted(set()) is np.unique's result without its ~5 us of array set-up on a few ids
            member_brands = np.array(sorted(set(members)), np.int64) if members else _NO_ROWS
        if (
            vector is None
            and user_row >= 0
            and not len(recent)
            and self._user_vectors_ready
            and users.has_vector[user_row]
        ):
            # The usual known shopper: the stored vector, already float32[1, d] C-contiguous (a view).
            query, cold = users.vectors[user_row : user_row + 1], False
        else:
            query, cold = self._query(shopper, user_row, vector, recent, lifecycle)
        return Resolved(
            query=query,
            cold=cold,
            user_row=user_row,
            region=region,
            lifecycle=lifecycle,
            segments=segments,
            member_brands=member_brands,
            recent_rows=recent,
            purchased_rows=purchased,
        )

    def _features(self, shopper: Shopper, user_row: int) -> list[str]:
        """The ``key=value`` strings the bundle's cold-start table was fitted on, in the build's
        order (``peakrec.bundle.coldstart.user_features``): stored facts of a known user, else the
        request's context."""
        vocab = self.bundle.vocab
        users = self.users
        context = [f"{k}={v}" for k, v in sorted(shopper.context.items()) if k not in _SPECIAL_KEYS]
        members = list(shopper.member_brands)
        if user_row >= 0:
            region = vocab["regions"][int(users.region[user_row])]
            bits = int(users.segments[user_row])
            segments = [name for i, name in enumerate(vocab.get("segments", [])) if bits >> i & 1]
            stage = int(users.lifecycle[user_row])
            lifecycle = self.lifecycle_names[stage] if stage < len(self.lifecycle_names) else "awareness"
            lo, hi = users.memberships_indptr[user_row], users.memberships_indptr[user_row + 1]
            members = [vocab["brands"][int(b)] for b in users.memberships[lo:hi]] + members
            lo, hi = users.features_indptr[user_row], users.features_indptr[user_row + 1]
            context = [str(f) for f in users.features[lo:hi]] + context
        else:
            region = shopper.region or shopper.context.get("region", "")
            segment = shopper.context.get("segment")
            segments = [segment] if segment else []
            lifecycle = shopper.context.get("lifecycle", "awareness")
            if not (region or segments or members or context):
                return []
        out = [f"region={region}"] if region else []
        out += [f"segment={s}" for s in segments]
        out.append(f"lifecycle={lifecycle}")
        out += [f"member={b}" for b in members]
        out += context
        return list(dict.fromkeys(out))

    def _query(self, shopper, user_row, vector, recent, lifecycle) -> tuple[np.ndarray | None, bool]:
        users = self.users
        base = None
        cold = False
        if vector is not None:
            base = check_vector(vector, self.dim, "shopper.vector")
        elif user_row >= 0 and users.has_vector[user_row]:
            base = np.asarray(users.vectors[user_row], dtype=np.float32)
        else:
            cold = True
            features = self._features(shopper, user_row)
            if features:
                pooled = self.hasher.pool([features], self.bundle.coldstart_table, mode=self.pooling)[0]
                if np.any(pooled):
                    base = pooled
        if len(recent):
            # Session intent: what the shopper just looked at pulls the query towards it.
            intent = self.vectors[recent].mean(axis=0, dtype=np.float32)
            cfg = self.config
            w = cfg.interest_session_weight if lifecycle == "interest" else cfg.session_weight
            base = intent if base is None else (1.0 - w) * base + w * intent
        if base is None:
            return None, True
        return np.ascontiguousarray(base, dtype=np.float32).reshape(1, -1), cold


_NO_ROWS = np.empty(0, np.int64)


_SPECIAL_KEYS = ("region", "segment", "lifecycle")


def check_vector(vector, dim: int, field: str) -> np.ndarray:
    """A caller-supplied vector as float32[d]; refuses a wrong length and NaN or infinities."""
    try:
        arr = np.asarray(vector, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"{field}: not a vector of numbers ({err})") from None
    if arr.shape[0] != dim:
        raise InvalidInputError(f"{field}: expected {dim} values, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{field}: contains NaN or infinity")
    return arr
