"""Chicago crime counts (ST-SHN / STHSL), 14x12 grid, daily 2016-2017, 4 categories."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from urbanst.data.container import STData
from urbanst.data.declaration import DatasetSpec, Repo, Source
from urbanst.data.readers._common import crime_cube
from urbanst.data.safe_pickle import load_pickle

FOLDER = "chi_crime_stshn"
SPLITS = ("trn", "val", "tst")
# Order of STHSL's dataProcessing_CHI.py offenseMap; not checked against the raw events here (CHI_Crime.csv absent).
CATEGORIES = ["THEFT", "BATTERY", "ASSAULT", "CRIMINAL DAMAGE"]

REPO = Repo("akaxlh/ST-SHN", "0a5f1adf907e91212a0b0e252a59fb3e379a975b")
SOURCE = Source(FOLDER, (
    REPO.file("trn.pkl", "Datasets/CHI_crime/trn.pkl",
              "2a54c528a79031ba13ce17ca3002cd608557bd62bef8fae3285a5fb437100fca", 3274157),
    REPO.file("val.pkl", "Datasets/CHI_crime/val.pkl",
              "636012a59d246d6b9d54cc818c527e85db0c3fef4e0dd20318a22b086553bbbf", 161452),
    REPO.file("tst.pkl", "Datasets/CHI_crime/tst.pkl",
              "a86ac4a08b9c2c7c17bd53a79254354d3e80d25369e0023cc8f18e23bd2957f2", 494764),
))

NOTES = """\
Daily crime counts 2016-01-01 .. 2017-12-31, about 3 km x 3 km cells, 14 rows (from the south) x 12 columns (from the
west), unit = row * 12 + col. The pickles store (row, col, day, category). Channel order NOT verified here: names follow
the offenseMap of STHSL's dataProcessing_CHI.py (THEFT, BATTERY, ASSAULT, CRIMINAL DAMAGE), which the data scout reports
reproduces trn/val exactly from the raw events; the two-year totals (124,630 / 99,389 / 37,972 / 59,885) fit Chicago's
usual ranking (theft > battery > criminal damage > assault). The ST-SHN paper lists Theft, Damage, Battery, Assault.
Benchmark split trn | val | tst = 609 | 30 | 92 days (protocol split_index). 74 of 168 cells never record a crime
(outside the city or water); their zeros are kept as observed."""


def read_chi_crime(folder: Path) -> STData:
    parts = [load_pickle(folder / f"{split}.pkl") for split in SPLITS]
    bounds = np.cumsum([p.shape[2] for p in parts])[:-1].tolist()
    return crime_cube(
        "chi_crime",
        np.concatenate(parts, axis=2),
        start="2016-01-01",
        categories=CATEGORIES,
        city="Chicago",
        protocol={"split_index": bounds},
        notes=NOTES,
    )


DATASETS = (
    DatasetSpec("chi_crime", "Chicago crime counts, 14x12 grid, daily 2016-2017, 4 categories (ST-SHN)",
                read_chi_crime, SOURCE),
)
