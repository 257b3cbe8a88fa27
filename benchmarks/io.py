"""Load events and all IRFs of the H.E.S.S. DL3 DR1 runs: xgamma vs plain astropy.

Both sides read the same HDUs of the same files in the same run; the
baseline opens each file with ``astropy.io.fits`` and touches every HDU's
data. Each side is timed ``--repeat`` times, alternating, and the best time
is kept (the file cache is warm for both after the first pass).

Target (issue 2): ``ratio <= 1.0`` (xgamma no slower than plain astropy).

Usage::

    python benchmarks/io.py [--data PATH] [--repeat 3] [--json benchmarks/results/io.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from astropy.io import fits

from xgamma.data import DataStore

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = Path(os.environ.get("XGAMMA_DATA", HERE.parent.parent / "shared" / "data"))


def load_astropy(files_and_hdus):
    """Plain astropy: open each file once and read the data of every HDU."""
    n_events = 0
    for path, hdus in files_and_hdus:
        with fits.open(path, memmap=False) as hdul:
            for name in hdus:
                data = hdul[name].data
                if name.upper() == "EVENTS":
                    n_events += len(data)
    return n_events


def load_xgamma(store):
    """xgamma: fresh lazy observations, each loading events and all IRFs."""
    n_events = 0
    for obs in store.get_observations():
        obs.load()
        n_events += len(obs.events)
    return n_events


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "io.json")
    args = parser.parse_args(argv)

    store = DataStore.from_dir(args.data / "hess-dl3-dr1")
    rows = store.hdu_table
    files = {}
    for path, hdu in zip(rows["PATH"], rows["HDU_NAME"]):
        files.setdefault(str(path), []).append(str(hdu))
    files_and_hdus = list(files.items())

    times = {"astropy": [], "xgamma": []}
    counts = {}
    for _ in range(args.repeat):
        for name, run in (("astropy", lambda: load_astropy(files_and_hdus)), ("xgamma", lambda: load_xgamma(store))):
            start = time.perf_counter()
            counts[name] = run()
            times[name].append(time.perf_counter() - start)
    if counts["astropy"] != counts["xgamma"]:
        raise RuntimeError(f"event counts differ: {counts}")

    n_runs = len(store.obs_ids)
    result = {
        "n_runs": n_runs,
        "n_events": counts["xgamma"],
        "astropy_seconds": min(times["astropy"]),
        "xgamma_seconds": min(times["xgamma"]),
        "astropy_seconds_per_run": min(times["astropy"]) / n_runs,
        "xgamma_seconds_per_run": min(times["xgamma"]) / n_runs,
        "ratio": min(times["xgamma"]) / min(times["astropy"]),
        "target_ratio_max": 1.0,
        "all_times": times,
    }
    for key, value in result.items():
        if key != "all_times":
            print(f"{key:28s} {value:.4g}" if isinstance(value, float) else f"{key:28s} {value}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"saved {args.json}")


if __name__ == "__main__":
    main()
