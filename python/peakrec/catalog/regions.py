"""Region codes: ISO 3166-1 alpha-2 countries and territories, plus China's provinces as ISO 3166-2.

The order of ``REGION_CODES`` is the bit order of ``items/regions.npy`` and is part of the bundle
format (the bundle stores it in ``vocab.json``); append new codes at the end, never reorder.
"""

from __future__ import annotations

# ISO 3166-1 alpha-2, all 249 officially assigned codes, in alphabetical order.
ISO_3166_1 = (
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR "
    "BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC "
    "EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK "
    "HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB "
    "LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ "
    "NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU "
    "RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN "
    "TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW"
).split()

# ISO 3166-2:CN (letter codes since 2017): 34 provincial-level divisions, with their names.
CN_PROVINCES = {
    "CN-AH": "安徽 Anhui",
    "CN-BJ": "北京 Beijing",
    "CN-CQ": "重庆 Chongqing",
    "CN-FJ": "福建 Fujian",
    "CN-GD": "广东 Guangdong",
    "CN-GS": "甘肃 Gansu",
    "CN-GX": "广西 Guangxi",
    "CN-GZ": "贵州 Guizhou",
    "CN-HA": "河南 Henan",
    "CN-HB": "湖北 Hubei",
    "CN-HE": "河北 Hebei",
    "CN-HI": "海南 Hainan",
    "CN-HK": "香港 Hong Kong",
    "CN-HL": "黑龙江 Heilongjiang",
    "CN-HN": "湖南 Hunan",
    "CN-JL": "吉林 Jilin",
    "CN-JS": "江苏 Jiangsu",
    "CN-JX": "江西 Jiangxi",
    "CN-LN": "辽宁 Liaoning",
    "CN-MO": "澳门 Macao",
    "CN-NM": "内蒙古 Inner Mongolia",
    "CN-NX": "宁夏 Ningxia",
    "CN-QH": "青海 Qinghai",
    "CN-SC": "四川 Sichuan",
    "CN-SD": "山东 Shandong",
    "CN-SH": "上海 Shanghai",
    "CN-SN": "陕西 Shaanxi",
    "CN-SX": "山西 Shanxi",
    "CN-TJ": "天津 Tianjin",
    "CN-TW": "台湾 Taiwan",
    "CN-XJ": "新疆 Xinjiang",
    "CN-XZ": "西藏 Tibet",
    "CN-YN": "云南 Yunnan",
    "CN-ZJ": "浙江 Zhejiang",
}

REGION_CODES: tuple[str, ...] = tuple(ISO_3166_1) + tuple(CN_PROVINCES)

# Catalogue-side shorthands: an item sellable in a country is sellable in its subdivisions, and
# "*" means everywhere. Users always name one concrete code.
WORLDWIDE = "*"
SUBDIVISIONS: dict[str, tuple[str, ...]] = {"CN": tuple(CN_PROVINCES)}

assert len(ISO_3166_1) == 249 and len(set(REGION_CODES)) == len(REGION_CODES)
