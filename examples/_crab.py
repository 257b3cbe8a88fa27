"""Small helpers shared by the examples (not an example itself).

Command-line arguments (``--data``, ``--out``), the Crab position and runs,
the reference numbers of ../shared/reference, a side-by-side print of fitted
parameters against them, and saving figures.
"""

import argparse
import os
from pathlib import Path

import numpy as np
import yaml
from astropy.coordinates import SkyCoord

#: The Crab Nebula and the four H.E.S.S. DR1 runs pointed at it.
CRAB = SkyCoord(83.633, 22.014, unit="deg", frame="icrs")
CRAB_RUNS = [23523, 23526, 23559, 23592]

_REPO = Path(__file__).resolve().parent.parent


def parser(doc: str) -> argparse.ArgumentParser:
    """``--data`` (default ``$XGAMMA_DATA`` or ../shared/data beside the repo) and ``--out`` (default .)."""
    out = argparse.ArgumentParser(description=doc.splitlines()[0])
    default = os.environ.get("XGAMMA_DATA", _REPO.parent / "shared" / "data")
    out.add_argument("--data", type=Path, default=Path(default), help="shared data folder")
    out.add_argument("--out", type=Path, default=Path("."), help="folder for plots and stores")
    return out


def parse(arguments: argparse.ArgumentParser) -> argparse.Namespace:
    args = arguments.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def reference(data: Path, name: str) -> dict | None:
    """A reference analysis (``crab-1d.yaml`` ...) next to the data folder, or None if absent."""
    for folder in (Path(data).resolve().parent / "reference", _REPO.parent / "shared" / "reference"):
        if (folder / name).is_file():
            return yaml.safe_load((folder / name).read_text())
    print(f"(reference {name} not found: printing the fit alone)")
    return None


def compare(parameters, total_stat: float, ref: dict | None, title: str):
    """Print each free parameter beside the reference value, and the distance in reference errors."""
    print(f"\n{title}")
    print(f"  {'parameter':<10} {'xgamma':>26} {'reference':>26} {'diff/ref_err':>13}")
    ref_pars = (ref or {}).get("parameters", {})
    seen = set()
    for par in parameters.free:
        if par.name in seen:  # e.g. one background norm per run: show the first
            continue
        seen.add(par.name)
        mine = f"{par.value:.5g} ± {par.error:.2g}"
        if par.name in ref_pars:
            r = ref_pars[par.name]
            theirs = f"{r['value']:.5g} ± {r['error']:.2g}"
            pull = f"{(par.value - r['value']) / r['error']:+.2f}" if r["error"] > 0 else ""
        else:
            theirs, pull = "-", ""
        print(f"  {par.name:<10} {mine:>26} {theirs:>26} {pull:>13}")
    ref_stat = f"{ref['total_stat']:.3f}" if ref else "-"
    print(f"  {'total_stat':<10} {total_stat:>26.3f} {ref_stat:>26}")


def correlation_table(parameters) -> str:
    """The correlation matrix of the free parameters as aligned text."""
    free = parameters.free
    cov = parameters.covariance_of(free)
    err = np.sqrt(np.diag(cov))
    corr = cov / np.outer(err, err)
    names = [p.name for p in free]
    lines = [" " * 11 + "".join(f"{n:>11}" for n in names)]
    lines += [f"{n:>11}" + "".join(f"{v:11.3f}" for v in row) for n, row in zip(names, corr)]
    return "\n".join(lines)


def correlate(values, binsz: float, radius_deg: float):
    """Sum of an image's ``values`` within ``radius_deg`` of each pixel (pixels of ``binsz`` deg)."""
    from scipy.signal import fftconvolve

    n = int(np.ceil(radius_deg / binsz))
    yy, xx = np.mgrid[-n:n + 1, -n:n + 1] * binsz
    return fftconvolve(values, (np.hypot(xx, yy) <= radius_deg).astype(float), mode="same")


def save(ax, path: Path):
    """Save the figure of ``ax`` and close it."""
    import matplotlib.pyplot as plt

    ax.figure.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(ax.figure)
    print(f"saved {path}")
