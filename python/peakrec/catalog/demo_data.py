"""A deterministic Double-11 demo catalogue with real structure behind the shoppers' tastes.

Latent-factor model (all vectors float32, dimension ``d``):

* every leaf category, brand and attribute has a latent vector; an item's embedding is
  ``normalize(category + 0.45 brand + 0.35 attribute + 0.2 noise)``;
* every value of a user feature (region, segment, age band, gender, city tier, device, lifecycle)
  has an effect vector that mixes a few category vectors; a user's taste is
  ``normalize(0.75 normalize(centred sum of their feature effects) + 0.65 personal)``, the personal
  part being a few categories plus a favourite brand and attribute, so context features predict a
  good part of the taste (what the cold-start table learns);
* purchases, past and held out, are drawn from the taste: a category by softmax of its affinity,
  then a softmax draw (Gumbel-max) over 64 items of that category by affinity and popularity, so
  held-out purchases are predictable from the user vector.

Same ``seed`` → the same bytes in every file. Files: ``items.jsonl``, ``users.jsonl`` (or Parquet),
``item_vectors.npy``, ``user_vectors.npy`` (zero rows for cold users), ``heldout.jsonl``,
``queries.jsonl`` and ``build.toml`` (the campaigns).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from peakrec.catalog.regions import CN_PROVINCES

# Festival "now" of the demo: 2026-11-11 00:00 Beijing time, in UTC.
DEMO_NOW = np.datetime64("2026-11-10T16:00:00", "s")

# (category path, leaf zh, leaf en, gendered?, base price, attributes (zh, en))
CATEGORIES: list[tuple[str, str, str, bool, float, list[tuple[str, str]]]] = [
    (
        "服饰>女装>连衣裙",
        "连衣裙",
        "dress",
        False,
        199,
        [("碎花", "floral"), ("法式", "French style"), ("修身", "slim fit"), ("真丝", "silk")],
    ),
    (
        "服饰>女装>T恤",
        "T恤",
        "T-shirt",
        False,
        79,
        [("纯棉", "cotton"), ("宽松", "oversize"), ("印花", "print"), ("短款", "cropped")],
    ),
    (
        "服饰>男装>夹克",
        "夹克",
        "jacket",
        False,
        399,
        [("工装", "workwear"), ("飞行员", "bomber"), ("防风", "windproof"), ("立领", "stand collar")],
    ),
    (
        "服饰>男装>衬衫",
        "衬衫",
        "shirt",
        False,
        159,
        [("免烫", "non-iron"), ("牛津纺", "oxford"), ("条纹", "striped"), ("商务", "business")],
    ),
    (
        "服饰>羽绒服",
        "羽绒服",
        "down jacket",
        True,
        899,
        [("长款", "long"), ("轻薄", "light"), ("连帽", "hooded"), ("鹅绒", "goose down")],
    ),
    (
        "运动户外>跑步鞋",
        "跑步鞋",
        "running shoes",
        True,
        599,
        [("气垫", "Air Zoom"), ("缓震", "cushioned"), ("轻量", "lightweight"), ("碳板", "carbon plate")],
    ),
    (
        "运动户外>篮球鞋",
        "篮球鞋",
        "basketball shoes",
        True,
        699,
        [("高帮", "high-top"), ("实战", "on-court"), ("低帮", "low-top"), ("耐磨", "durable")],
    ),
    (
        "运动户外>瑜伽垫",
        "瑜伽垫",
        "yoga mat",
        False,
        129,
        [("加厚", "thick"), ("防滑", "non-slip"), ("天然橡胶", "natural rubber"), ("便携", "portable")],
    ),
    (
        "运动户外>运动服",
        "运动套装",
        "sportswear set",
        True,
        299,
        [("速干", "quick-dry"), ("训练", "training"), ("秋冬", "autumn-winter"), ("针织", "knit")],
    ),
    (
        "运动户外>登山包",
        "登山包",
        "hiking backpack",
        False,
        349,
        [("40L", "40L"), ("防水", "waterproof"), ("轻量", "ultralight"), ("背负", "ventilated")],
    ),
    (
        "数码>手机",
        "手机",
        "smartphone",
        False,
        3999,
        [("5G", "5G"), ("256GB", "256GB"), ("旗舰", "flagship"), ("拍照", "camera")],
    ),
    (
        "数码>耳机",
        "蓝牙耳机",
        "wireless earbuds",
        False,
        299,
        [
            ("降噪", "noise cancelling"),
            ("运动", "sport"),
            ("半入耳", "semi in-ear"),
            ("长续航", "long battery"),
        ],
    ),
    (
        "数码>平板电脑",
        "平板电脑",
        "tablet",
        False,
        2999,
        [("11英寸", "11-inch"), ("学习", "study"), ("WiFi", "WiFi"), ("128GB", "128GB")],
    ),
    (
        "数码>智能手表",
        "智能手表",
        "smartwatch",
        False,
        1299,
        [("心率", "heart rate"), ("GPS", "GPS"), ("长续航", "long battery"), ("运动", "sport")],
    ),
    (
        "数码>充电宝",
        "充电宝",
        "power bank",
        False,
        99,
        [("20000毫安", "20000mAh"), ("快充", "fast charge"), ("磁吸", "magnetic"), ("迷你", "mini")],
    ),
    (
        "家电>空气炸锅",
        "空气炸锅",
        "air fryer",
        False,
        349,
        [("大容量", "large"), ("可视", "see-through"), ("无油", "oil-free"), ("智能", "smart")],
    ),
    (
        "家电>扫地机器人",
        "扫地机器人",
        "robot vacuum",
        False,
        2499,
        [
            ("扫拖一体", "sweep and mop"),
            ("自动集尘", "self-emptying"),
            ("激光导航", "lidar"),
            ("避障", "obstacle avoiding"),
        ],
    ),
    (
        "家电>电动牙刷",
        "电动牙刷",
        "electric toothbrush",
        False,
        199,
        [("声波", "sonic"), ("美白", "whitening"), ("软毛", "soft bristle"), ("长续航", "long battery")],
    ),
    (
        "美妆>护肤>面霜",
        "面霜",
        "face cream",
        False,
        399,
        [
            ("保湿", "moisturising"),
            ("抗皱", "anti-wrinkle"),
            ("修护", "repair"),
            ("敏感肌", "sensitive skin"),
        ],
    ),
    (
        "美妆>护肤>精华",
        "精华液",
        "serum",
        False,
        499,
        [
            ("小棕瓶", "night repair"),
            ("美白", "brightening"),
            ("玻尿酸", "hyaluronic"),
            ("抗老", "anti-ageing"),
        ],
    ),
    (
        "美妆>彩妆>口红",
        "口红",
        "lipstick",
        False,
        199,
        [("哑光", "matte"), ("滋润", "moisturising"), ("正红", "classic red"), ("豆沙", "nude rose")],
    ),
    (
        "美妆>香水",
        "香水",
        "perfume",
        False,
        699,
        [("花香", "floral"), ("木质", "woody"), ("淡香", "eau de toilette"), ("礼盒", "gift box")],
    ),
    (
        "食品>零食>坚果",
        "坚果礼盒",
        "mixed nuts",
        False,
        69,
        [("每日", "daily"), ("礼盒", "gift box"), ("原味", "original"), ("碧根果", "pecan")],
    ),
    (
        "食品>零食>辣条",
        "辣条",
        "spicy gluten strips",
        False,
        9.9,
        [("经典", "classic"), ("麻辣", "hot and numbing"), ("大包", "family pack"), ("小包", "snack pack")],
    ),
    (
        "食品>饮料>咖啡",
        "咖啡",
        "coffee",
        False,
        59,
        [("冷萃", "cold brew"), ("挂耳", "drip bag"), ("速溶", "instant"), ("拿铁", "latte")],
    ),
    (
        "食品>生鲜>水果",
        "水果",
        "fresh fruit",
        False,
        49,
        [("脐橙", "navel orange"), ("车厘子", "cherries"), ("苹果", "apples"), ("猕猴桃", "kiwi")],
    ),
    (
        "食品>粮油>大米",
        "大米",
        "rice",
        False,
        59,
        [("东北", "northeast"), ("五常", "Wuchang"), ("10斤", "5kg"), ("新米", "new harvest")],
    ),
    (
        "母婴>纸尿裤",
        "纸尿裤",
        "diapers",
        False,
        129,
        [("超薄", "ultra-thin"), ("拉拉裤", "pull-ups"), ("L码", "size L"), ("透气", "breathable")],
    ),
    (
        "母婴>奶粉",
        "奶粉",
        "infant formula",
        False,
        299,
        [("1段", "stage 1"), ("2段", "stage 2"), ("3段", "stage 3"), ("有机", "organic")],
    ),
    (
        "母婴>玩具",
        "玩具",
        "toys",
        False,
        199,
        [("积木", "building blocks"), ("益智", "educational"), ("遥控", "remote control"), ("毛绒", "plush")],
    ),
    (
        "家居>床品>四件套",
        "四件套",
        "bedding set",
        False,
        299,
        [("全棉", "cotton"), ("磨毛", "brushed"), ("天丝", "tencel"), ("1.8米", "king size")],
    ),
    (
        "家居>收纳",
        "收纳盒",
        "storage box",
        False,
        39,
        [("抽屉式", "drawer"), ("折叠", "foldable"), ("透明", "clear"), ("大号", "large")],
    ),
    (
        "家居>日用>纸巾",
        "纸巾",
        "tissues",
        False,
        19.9,
        [("抽纸", "facial"), ("家庭装", "family pack"), ("原木", "virgin pulp"), ("3层", "3-ply")],
    ),
    (
        "个护>洗发水",
        "洗发水",
        "shampoo",
        False,
        59,
        [
            ("去屑", "anti-dandruff"),
            ("控油", "oil control"),
            ("柔顺", "smoothing"),
            ("无硅油", "silicone-free"),
        ],
    ),
    (
        "图书>童书",
        "童书",
        "children's books",
        False,
        49,
        [("绘本", "picture book"), ("科普", "science"), ("套装", "box set"), ("英文", "English")],
    ),
    (
        "宠物>猫粮",
        "猫粮",
        "cat food",
        False,
        129,
        [("全价", "complete"), ("冻干", "freeze-dried"), ("幼猫", "kitten"), ("无谷", "grain-free")],
    ),
]

# Brand: (name, top-level groups, premium, has a member programme)
BRANDS: list[tuple[str, tuple[str, ...], bool, bool]] = [
    ("Nike", ("运动户外",), False, True),
    ("Adidas", ("运动户外",), False, True),
    ("李宁", ("运动户外", "服饰"), False, True),
    ("安踏", ("运动户外",), False, True),
    ("Lululemon", ("运动户外",), True, True),
    ("The North Face", ("运动户外", "服饰"), True, False),
    ("波司登", ("服饰",), False, True),
    ("优衣库", ("服饰",), False, False),
    ("ZARA", ("服饰",), False, False),
    ("太平鸟", ("服饰",), False, True),
    ("森马", ("服饰",), False, False),
    ("海澜之家", ("服饰",), False, False),
    ("Apple", ("数码",), True, False),
    ("华为", ("数码",), True, True),
    ("小米", ("数码", "家电"), False, True),
    ("OPPO", ("数码",), False, False),
    ("vivo", ("数码",), False, False),
    ("Anker", ("数码",), False, False),
    ("美的", ("家电",), False, True),
    ("戴森", ("家电",), True, True),
    ("科沃斯", ("家电",), False, False),
    ("飞利浦", ("家电", "个护"), False, False),
    ("兰蔻", ("美妆",), True, True),
    ("雅诗兰黛", ("美妆",), True, True),
    ("完美日记", ("美妆",), False, True),
    ("花西子", ("美妆",), False, True),
    ("珀莱雅", ("美妆",), False, False),
    ("三只松鼠", ("食品",), False, True),
    ("良品铺子", ("食品",), False, False),
    ("卫龙", ("食品",), False, False),
    ("雀巢", ("食品", "母婴"), False, False),
    ("瑞幸", ("食品",), False, True),
    ("五常", ("食品",), False, False),
    ("帮宝适", ("母婴",), False, True),
    ("花王", ("母婴",), False, False),
    ("飞鹤", ("母婴",), False, True),
    ("乐高", ("母婴",), True, True),
    ("罗莱", ("家居",), True, False),
    ("水星家纺", ("家居",), False, False),
    ("维达", ("家居",), False, False),
    ("清风", ("家居",), False, False),
    ("海飞丝", ("个护",), False, False),
    ("中信出版", ("图书",), False, False),
    ("皇家", ("宠物",), True, True),
]
N_SHOP_BRANDS = 120  # long tail: "优选小店007 Shop007", two groups each

SEGMENTS = [
    "small-town-active-youth",
    "free-shipping-hunter",
    "brand-loyalist",
    "new-mom",
    "premium-shopper",
    "student",
    "urban-white-collar",
    "silver-shopper",
    "cross-border-buyer",
]
AGE_BANDS = ["18-24", "25-34", "35-44", "45-54", "55+"]
DEVICES = ["android", "ios", "mini-program", "pc"]
FOREIGN = [
    "BR",
    "US",
    "SG",
    "MY",
    "JP",
    "KR",
    "GB",
    "DE",
    "FR",
    "AU",
    "CA",
    "TH",
    "VN",
    "ID",
    "MX",
    "ES",
    "IT",
    "AE",
]
CROSS_BORDER = ["CN", "BR", "US", "GB", "DE", "FR", "JP", "KR", "AU", "CA", "MX", "ES", "SG", "MY"]
# (id, name, segments, boost, start, end): times in UTC (Beijing is +08:00), None = open.
CAMPAIGNS = [
    (
        "double11-main",
        "双11 主会场 Double 11 main venue",
        [],
        0.05,
        "2026-10-20T16:00:00Z",
        "2026-11-11T16:00:00Z",
    ),
    (
        "c99-free-shipping",
        "9.9 包邮 9.9 free shipping",
        ["small-town-active-youth", "free-shipping-hunter"],
        0.3,
        None,
        None,
    ),
    (
        "new-mom-festival",
        "母婴节 new mom festival",
        ["new-mom"],
        0.2,
        "2026-11-01T16:00:00Z",
        "2026-11-11T16:00:00Z",
    ),
    (
        "premium-picks",
        "大牌精选 premium picks",
        ["premium-shopper", "urban-white-collar"],
        0.15,
        "2026-11-05T16:00:00Z",
        "2026-11-12T16:00:00Z",
    ),
    (
        "cross-border-week",
        "跨境周 cross-border week",
        ["cross-border-buyer"],
        0.2,
        "2026-11-08T16:00:00Z",
        None,
    ),
    # Not yet running at the demo's festival time: it boosts nothing then.
    (
        "sports-brand-day",
        "运动品牌日 sports brand day",
        ["brand-loyalist", "student"],
        0.15,
        "2026-11-20T16:00:00Z",
        "2026-11-21T16:00:00Z",
    ),
]

# Which categories a segment or gender leans to (leaf category zh names); other values are random.
LEANINGS: dict[str, list[str]] = {
    "segment=small-town-active-youth": ["辣条", "T恤", "充电宝", "蓝牙耳机", "篮球鞋", "手机"],
    "segment=free-shipping-hunter": ["辣条", "纸巾", "收纳盒", "洗发水", "坚果礼盒"],
    "segment=brand-loyalist": ["跑步鞋", "运动套装", "精华液", "篮球鞋"],
    "segment=new-mom": ["纸尿裤", "奶粉", "玩具", "童书"],
    "segment=premium-shopper": ["香水", "精华液", "扫地机器人", "平板电脑", "羽绒服"],
    "segment=student": ["蓝牙耳机", "平板电脑", "T恤", "篮球鞋", "咖啡"],
    "segment=urban-white-collar": ["咖啡", "衬衫", "智能手表", "连衣裙", "空气炸锅"],
    "segment=silver-shopper": ["大米", "水果", "四件套", "电动牙刷"],
    "segment=cross-border-buyer": ["奶粉", "面霜", "香水", "猫粮"],
    "gender=f": ["连衣裙", "面霜", "口红", "瑜伽垫", "精华液"],
    "gender=m": ["夹克", "衬衫", "篮球鞋", "手机", "登山包"],
}


@dataclass
class DemoSpec:
    items: int = 200_000
    users: int = 50_000
    dim: int = 64
    seed: int = 11
    cold_share: float = 0.1
    heldout: int = 3


def generate(out: str | Path, spec: DemoSpec, fmt: str = "jsonl", progress: bool = False) -> dict[str, Any]:
    """Writes the demo catalogue into ``out``; returns counts for the summary. ``progress`` shows a
    bar over the generation steps on stderr."""
    if spec.items < 100 or spec.users < 10 or spec.dim < 8:
        raise ValueError("demo-data needs at least 100 items, 10 users and dimension 8")
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=8, desc="demo-data", unit="step", disable=not progress, leave=False, dynamic_ncols=True)

    def step(name: str) -> None:
        bar.set_postfix_str(name, refresh=False)
        bar.update(1)

    with bar:
        rng = np.random.default_rng(spec.seed)
        latent = _Latent(rng, spec.dim)
        items = _items(rng, latent, spec.items)
        step("items")
        users = _users(rng, latent, spec.users, spec.cold_share)
        step("users")
        history, heldout = _purchases(rng, latent, items, users, spec.heldout)
        step("purchases")
        _write_items(out, items, fmt)
        step("items written")
        _write_users(out, users, history, fmt)
        step("users written")
        np.save(out / "item_vectors.npy", items["vectors"])
        np.save(
            out / "user_vectors.npy",
            np.where(users["cold"][:, None], 0, users["vectors"]).astype(np.float32),
        )
        step("vectors written")
        with open(out / "heldout.jsonl", "w", encoding="utf-8") as f:
            for u, rows in zip(users["user_id"], heldout, strict=True):
                f.write(
                    json.dumps({"user_id": u, "next_purchases": [items["item_id"][r] for r in rows]}) + "\n"
                )
        step("held-out purchases")
        n_queries = _write_queries(out, rng, items)
        _write_build_toml(out)
        step("queries")
    return {
        "items": spec.items,
        "users": spec.users,
        "cold_users": int(users["cold"].sum()),
        "queries": n_queries,
        "dim": spec.dim,
        "out": str(out),
    }


class _Latent:
    """Latent vectors of categories, brands, attributes and user-feature values."""

    def __init__(self, rng: np.random.Generator, d: int) -> None:
        self.d = d
        groups = sorted({path.split(">")[0] for path, *_ in CATEGORIES})
        self.groups = groups
        self.leaf_group = np.array([groups.index(path.split(">")[0]) for path, *_ in CATEGORIES])
        group_vec = _normalize(rng.standard_normal((len(groups), d)))
        self.category = _normalize(
            0.6 * group_vec[self.leaf_group] + 0.8 * _normalize(rng.standard_normal((len(CATEGORIES), d)))
        )
        self.attribute = _normalize(rng.standard_normal((len(CATEGORIES), 4, d)))
        shop = [
            (f"优选小店{i:03d}", tuple(rng.choice(groups, 2, replace=False)), False, False)
            for i in range(N_SHOP_BRANDS)
        ]
        self.brands = BRANDS + shop
        self.brand = _normalize(rng.standard_normal((len(self.brands), d)))
        self._rng = rng
        self._effects: dict[str, np.ndarray] = {}
        self.leaf_zh = [c[1] for c in CATEGORIES]

    def effect(self, feature: str) -> np.ndarray:
        """Effect vector of one ``key=value`` feature (created on first use, in a fixed order)."""
        if feature not in self._effects:
            weights = np.zeros(len(CATEGORIES))
            leaning = LEANINGS.get(feature)
            if leaning:
                weights[[self.leaf_zh.index(z) for z in leaning]] = 1.0
            else:
                weights = self._rng.dirichlet(np.full(len(CATEGORIES), 0.15))
            self._effects[feature] = _normalize(weights @ self.category)
        return self._effects[feature]


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _items(rng: np.random.Generator, latent: _Latent, n: int) -> dict[str, Any]:
    n_cat = len(CATEGORIES)
    cat_weight = rng.dirichlet(np.full(n_cat, 3.0))
    leaf = rng.choice(n_cat, size=n, p=cat_weight)
    # Brands of each leaf's group; named brands are 8x as likely as long-tail shops.
    brand = np.empty(n, dtype=np.int64)
    for c in range(n_cat):
        rows = np.flatnonzero(leaf == c)
        group = CATEGORIES[c][0].split(">")[0]
        cand = np.array([b for b, br in enumerate(latent.brands) if group in br[1]])
        w = np.array([8.0 if b < len(BRANDS) else 1.0 for b in cand])
        brand[rows] = rng.choice(cand, size=len(rows), p=w / w.sum())
    attr = rng.integers(0, 4, size=n)
    noise = _normalize(rng.standard_normal((n, latent.d)))
    vectors = _normalize(
        latent.category[leaf] + 0.45 * latent.brand[brand] + 0.35 * latent.attribute[leaf, attr] + 0.2 * noise
    )
    premium = np.array([br[2] for br in latent.brands])[brand]
    base = np.array([c[4] for c in CATEGORIES])[leaf]
    price = base * np.exp(rng.normal(0, 0.45, n)) * np.where(premium, 1.8, 1.0)
    price = np.maximum(np.floor(price) + 0.9, 1.9)
    cheap = (base <= 20) & (rng.random(n) < 0.6)
    price[cheap] = 9.9
    stock = np.where(rng.random(n) < 0.05, 0, rng.geometric(1 / 300, n)).astype(np.int64)
    rank = rng.permutation(n)
    popularity = np.floor(50000.0 / (rank + 1) ** 0.9).astype(np.int64)
    # Launch dates: most over the past two years, 6% in the last 14 days.
    age_days = rng.integers(15, 700, n)
    new = rng.random(n) < 0.06
    age_days[new] = rng.integers(0, 14, new.sum())
    launch = np.datetime_as_string((DEMO_NOW - age_days.astype("timedelta64[D]")).astype("datetime64[D]"))
    presale = rng.random(n) < 0.03
    presale_start = DEMO_NOW - rng.integers(1, 21, n).astype("timedelta64[D]")
    presale_end = DEMO_NOW + rng.integers(0, 3, n).astype("timedelta64[D]") + np.timedelta64(8, "h")
    has_member = np.array([br[3] for br in latent.brands])[brand]
    member_only = has_member & (rng.random(n) < 0.06)
    kind = rng.choice(5, size=n, p=[0.65, 0.12, 0.08, 0.10, 0.05])
    group_id = latent.leaf_group[leaf]
    provinces = list(CN_PROVINCES)
    return {
        "item_id": [f"i{r:07d}" for r in range(n)],
        "leaf": leaf,
        "brand": brand,
        "attr": attr,
        "vectors": vectors.astype(np.float32),
        "price": np.round(price, 2),
        "stock": stock,
        "popularity": popularity,
        "launch": launch,
        "new": new,
        "presale": presale,
        "presale_start": np.datetime_as_string(presale_start),
        "presale_end": np.datetime_as_string(presale_end),
        "member_only": member_only,
        "kind": kind,
        "province_pick": rng.integers(0, len(provinces), size=(n, 5)),
        "group": group_id,
        "double11": rng.random(n) < 0.4,
        "gender": rng.choice(3, size=n, p=[0.45, 0.35, 0.2]),
        "premium": premium,
        "brands": latent.brands,
    }


def _users(rng: np.random.Generator, latent: _Latent, m: int, cold_share: float) -> dict[str, Any]:
    provinces = list(CN_PROVINCES)
    region_pool = provinces + FOREIGN
    weights = np.concatenate(
        [rng.dirichlet(np.full(len(provinces), 2.0)) * 0.85, rng.dirichlet(np.full(len(FOREIGN), 1.0)) * 0.15]
    )
    region = list(np.array(region_pool)[rng.choice(len(region_pool), size=m, p=weights)])
    age = rng.choice(len(AGE_BANDS), size=m, p=[0.25, 0.32, 0.2, 0.13, 0.1])
    gender = rng.choice(["f", "m"], size=m, p=[0.58, 0.42])
    tier = rng.choice(5, size=m, p=[0.15, 0.2, 0.25, 0.22, 0.18]) + 1
    device = rng.choice(DEVICES, size=m, p=[0.5, 0.3, 0.15, 0.05])
    lifecycle = rng.choice(["awareness", "interest", "purchase", "loyalty"], size=m, p=[0.2, 0.3, 0.3, 0.2])
    cold = rng.random(m) < cold_share
    r = rng.random((m, len(SEGMENTS)))
    young, small_town = age == 0, tier >= 4
    p_seg = np.stack(
        [
            np.where(young & small_town, 0.75, np.where(small_town, 0.15, 0.02)),
            np.where(tier >= 3, 0.35, 0.1),
            np.full(m, 0.1),
            np.where((gender == "f") & (age == 1), 0.4, 0.02),
            np.where(tier == 1, 0.25, 0.03),
            np.where(young, 0.45, 0.0),
            np.where((tier <= 2) & ((age == 1) | (age == 2)), 0.45, 0.05),
            np.where(age == 4, 0.6, 0.0),
            np.where(np.isin(region, FOREIGN), 0.3, 0.06),
        ],
        axis=1,
    )
    member_of = r < p_seg
    # The shoppers the demo shows by name.
    named = _named_users(m)
    for i, who in enumerate(named):
        region[i], age[i], gender[i], tier[i], device[i], lifecycle[i] = (
            who["region"],
            AGE_BANDS.index(who["age_band"]),
            who["gender"],
            who["city_tier"],
            who["device"],
            who["lifecycle"],
        )
        member_of[i] = [s in who["segments"] for s in SEGMENTS]
        cold[i] = who["cold"]
    segments = [[s for s, yes in zip(SEGMENTS, row, strict=True) if yes] for row in member_of]
    features = [
        {
            "device": str(device[i]),
            "age_band": AGE_BANDS[age[i]],
            "gender": str(gender[i]),
            "city_tier": str(tier[i]),
        }
        for i in range(m)
    ]
    # Taste: feature effects (what cold start can recover) plus a personal part.
    effect = np.zeros((m, latent.d))
    count = np.zeros(m)
    keys = (
        [f"region={x}" for x in region],
        [f"age_band={AGE_BANDS[a]}" for a in age],
        [f"gender={g}" for g in gender],
        [f"city_tier={t}" for t in tier],
        [f"device={d}" for d in device],
        [f"lifecycle={x}" for x in lifecycle],
    )
    for column in keys:
        values, inverse = np.unique(column, return_inverse=True)
        table = np.stack([latent.effect(v) for v in values])
        effect += table[inverse]
        count += 1
    for s_i, s in enumerate(SEGMENTS):
        rows = member_of[:, s_i]
        effect[rows] += 1.5 * latent.effect(f"segment={s}")
    personal_mix = rng.dirichlet(np.full(len(CATEGORIES), 0.1), size=m)
    n_real = len(BRANDS)
    # A favourite brand and attribute within the user's main category: taste inside a category.
    main_leaf = np.argmax(personal_mix, axis=1)
    fav_brand = np.empty(m, dtype=np.int64)
    for c in range(len(CATEGORIES)):
        rows = np.flatnonzero(main_leaf == c)
        group = latent.groups[latent.leaf_group[c]]
        cand = np.array([b for b, br in enumerate(latent.brands) if group in br[1]])
        fav_brand[rows] = rng.choice(cand, size=len(rows))
    fav_attr = rng.integers(0, 4, size=m)
    personal = _normalize(
        personal_mix @ latent.category
        + 0.6 * latent.brand[fav_brand]
        + 0.4 * latent.attribute[main_leaf, fav_attr]
    )
    # Brand memberships follow taste: the member-programme brand the user likes best.
    has_programme = np.array([br[3] for br in BRANDS])
    affinity = personal @ latent.brand[:n_real].T
    affinity[:, ~has_programme] = -np.inf
    best = np.argmax(affinity, axis=1)
    memberships = [[BRANDS[best[i]][0]] if (rng.random() < 0.2 or member_of[i, 2]) else [] for i in range(m)]
    for i, who in enumerate(named):
        memberships[i] = who["memberships"]
        if who["memberships"]:
            b = [br[0] for br in latent.brands].index(who["memberships"][0])
            leaf = latent.leaf_zh.index(who["taste"])
            personal[i] = _normalize(latent.category[leaf] + 0.8 * latent.brand[b])
    effect -= effect.mean(axis=0)  # what sets users apart, not what all share
    taste = _normalize(0.75 * _normalize(effect) + 0.65 * personal)
    user_id = [who["user_id"] for who in named] + [f"u{i:07d}" for i in range(len(named), m)]
    return {
        "user_id": user_id,
        "region": region,
        "segments": segments,
        "lifecycle": list(lifecycle),
        "memberships": memberships,
        "features": features,
        "vectors": taste.astype(np.float32),
        "cold": cold,
    }


def _named_users(m: int) -> list[dict[str, Any]]:
    loyal = {
        "user_id": "u-zj-loyal-01",
        "region": "CN-ZJ",
        "segments": ["brand-loyalist", "urban-white-collar"],
        "lifecycle": "loyalty",
        "memberships": ["Nike"],
        "taste": "跑步鞋",
        "age_band": "25-34",
        "gender": "f",
        "city_tier": 1,
        "device": "ios",
        "cold": False,
    }
    brazil = [
        {
            "user_id": f"u-br-cold-{k:02d}",
            "region": "BR",
            "segments": [],
            "lifecycle": "awareness",
            "memberships": [],
            "age_band": a,
            "gender": g,
            "city_tier": 1,
            "device": "android",
            "cold": True,
        }
        for k, (a, g) in enumerate([("18-24", "m"), ("25-34", "f"), ("35-44", "m")], start=1)
    ]
    small = [
        {
            "user_id": f"u-smalltown-{k:02d}",
            "region": r,
            "segments": ["small-town-active-youth", "free-shipping-hunter"],
            "lifecycle": "interest",
            "memberships": [],
            "age_band": "18-24",
            "gender": g,
            "city_tier": t,
            "device": "android",
            "cold": False,
        }
        for k, (r, g, t) in enumerate([("CN-GS", "m", 5), ("CN-HA", "f", 4), ("CN-GX", "m", 4)], start=1)
    ]
    return ([loyal] + brazil + small)[:m]


def _purchases(
    rng: np.random.Generator, latent: _Latent, items: dict[str, Any], users: dict[str, Any], n_heldout: int
) -> tuple[list[list[int]], np.ndarray]:
    """Past purchases (item rows per user; none for cold users) and ``n_heldout`` next purchases."""
    m = len(users["user_id"])
    n_hist = np.minimum(1 + rng.poisson(4, m), 10)
    n_hist[users["cold"]] = 0
    draws = 10 + n_heldout
    # Candidates are drawn uniformly within the chosen category; popularity then weighs in the pick
    # like sampling by sqrt(popularity) would, and taste (affinity) decides among them.
    leaf = items["leaf"]
    log_pop = (0.5 * np.log1p(items["popularity"].astype(np.float64))).astype(np.float32)
    order = np.argsort(leaf, kind="stable")
    bounds = np.searchsorted(leaf[order], np.arange(len(CATEGORIES) + 1))
    start, count = bounds[:-1], np.diff(bounds)
    present = count > 0
    q = 64
    picks = np.empty((m, draws), dtype=np.int64)
    vec = items["vectors"]
    for lo in range(0, m, 1000):
        u = users["vectors"][lo : lo + 1000]
        k = len(u)
        cat_score = 8.0 * (u.astype(np.float64) @ latent.category.T)
        cat_score[:, ~present] = -np.inf
        chosen = np.argmax(cat_score[:, None, :] + rng.gumbel(size=(k, draws, len(CATEGORIES))), axis=2)
        offset = (rng.random((k, draws, q), dtype=np.float32) * count[chosen][..., None]).astype(np.int64)
        cand = order[start[chosen][..., None] + np.minimum(offset, count[chosen][..., None] - 1)]
        affinity = np.einsum("kd,ktqd->ktq", u, vec[cand], optimize=True)
        noise = -np.log(
            -np.log(rng.random(cand.shape, dtype=np.float32) + np.float32(1e-12)) + np.float32(1e-12)
        )
        score = 40.0 * affinity + log_pop[cand] + noise  # Gumbel-max: a softmax draw
        picks[lo : lo + k] = np.take_along_axis(cand, np.argmax(score, axis=2)[..., None], axis=2)[..., 0]
    heldout = picks[:, -n_heldout:]
    history = [list(dict.fromkeys(picks[i, : n_hist[i]].tolist())) for i in range(m)]
    return history, heldout


def _title(items: dict[str, Any], i: int) -> str:
    c = CATEGORIES[items["leaf"][i]]
    attr_zh, attr_en = c[5][items["attr"][i]]
    gender = ("女款 ", "男款 ", "")[items["gender"][i]] if c[3] or c[0].startswith("运动户外>跑步鞋") else ""
    prefix = "2026新款 " if items["new"][i] else ""
    return f"{items['brands'][items['brand'][i]][0]} {prefix}{gender}{c[1]} {attr_zh} {attr_en} {c[2]}"


def _item_records(items: dict[str, Any]) -> list[dict[str, Any]]:
    provinces = list(CN_PROVINCES)
    records = []
    for i, item_id in enumerate(items["item_id"]):
        kind = items["kind"][i]
        if kind == 0:
            regions = ["CN"]
        elif kind == 1:
            regions = sorted({provinces[p] for p in items["province_pick"][i]})
        elif kind == 2:
            regions = ["CN", "HK", "MO", "TW", "SG", "MY"]
        elif kind == 3:
            regions = ["*"]
        else:
            regions = CROSS_BORDER
        price = float(items["price"][i])
        campaigns = []
        if items["double11"][i]:
            campaigns.append("double11-main")
        if price <= 9.9:
            campaigns.append("c99-free-shipping")
        group = CATEGORIES[items["leaf"][i]][0].split(">")[0]
        if group == "母婴":
            campaigns.append("new-mom-festival")
        if items["premium"][i]:
            campaigns.append("premium-picks")
        if kind in (3, 4):
            campaigns.append("cross-border-week")
        if group == "运动户外" and items["brand"][i] < len(BRANDS):
            campaigns.append("sports-brand-day")
        tags = []
        if items["new"][i]:
            tags.append("new")
        if price <= 9.9:
            tags.append("包邮 free-shipping")
        if kind in (3, 4):
            tags.append("imported")
        rec = {
            "item_id": item_id,
            "title": _title(items, i),
            "brand": items["brands"][items["brand"][i]][0],
            "category": CATEGORIES[items["leaf"][i]][0],
            "price": price,
            "stock": int(items["stock"][i]),
            "regions": regions,
            "launch_date": str(items["launch"][i]),
            "member_only": bool(items["member_only"][i]),
            "campaigns": campaigns,
            "tags": tags,
            "popularity": int(items["popularity"][i]),
        }
        if items["presale"][i]:
            rec["presale_start"] = str(items["presale_start"][i]) + "Z"
            rec["presale_end"] = str(items["presale_end"][i]) + "Z"
        records.append(rec)
    return records


def _write_records(path: Path, records: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        # from_pylist takes its columns from the first record: give every record every key.
        keys = list(dict.fromkeys(k for rec in records for k in rec))
        rows = [{k: rec.get(k) for k in keys} for rec in records]
        pq.write_table(pa.Table.from_pylist(rows), path.with_suffix(".parquet"))
        return
    with open(path.with_suffix(".jsonl"), "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def _write_items(out: Path, items: dict[str, Any], fmt: str) -> None:
    _write_records(out / "items", _item_records(items), fmt)


def _write_users(out: Path, users: dict[str, Any], history: list[list[int]], fmt: str) -> None:
    records = []
    for i, user_id in enumerate(users["user_id"]):
        records.append(
            {
                "user_id": user_id,
                "region": users["region"][i],
                "segments": users["segments"][i],
                "lifecycle": users["lifecycle"][i],
                "memberships": users["memberships"][i],
                "purchased": [f"i{r:07d}" for r in history[i]],
                "features": users["features"][i],
            }
        )
    _write_records(out / "users", records, fmt)


def _write_queries(out: Path, rng: np.random.Generator, items: dict[str, Any], n: int = 1000) -> int:
    """Search queries ``brand + attribute + category`` in Chinese or English, with every item that
    matches all three as targets."""
    key = (items["brand"] * len(CATEGORIES) + items["leaf"]) * 4 + items["attr"]
    keys, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    members = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[members], np.arange(len(keys) + 1))
    pop = items["popularity"][first].astype(np.float64) + 1
    chosen = rng.choice(len(keys), size=min(n, len(keys)), replace=False, p=pop / pop.sum())
    with open(out / "queries.jsonl", "w", encoding="utf-8") as f:
        for j, g in enumerate(np.sort(chosen)):
            i = first[g]
            c = CATEGORIES[items["leaf"][i]]
            attr_zh, attr_en = c[5][items["attr"][i]]
            brand = items["brands"][items["brand"][i]][0]
            query = f"{brand} {attr_zh} {c[1]}" if j % 2 == 0 else f"{brand} {attr_en} {c[2]}"
            targets = [items["item_id"][r] for r in np.sort(members[bounds[g] : bounds[g + 1]])]
            f.write(
                json.dumps(
                    {"query": query, "lang": "zh" if j % 2 == 0 else "en", "targets": targets},
                    ensure_ascii=False,
                )
                + "\n"
            )
    return len(chosen)


def _write_build_toml(out: Path) -> None:
    lines = ["# Campaigns of the demo catalogue (peakrec build --config build.toml)."]
    for cid, name, segments, boost, start, end in CAMPAIGNS:
        seg = ", ".join(f'"{s}"' for s in segments)
        lines += [
            "",
            "[[campaigns]]",
            f'id = "{cid}"',
            f'name = "{name}"',
            f"segments = [{seg}]",
            f"boost = {boost}",
        ]
        lines += [f"start = {start}"] if start else []
        lines += [f"end = {end}"] if end else []
    (out / "build.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
