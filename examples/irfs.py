"""Plot the instrument responses of a H.E.S.S. run and of the CTA Prod5 South IRF.

Saves PNG files to --out (default: the current folder).

    python examples/irfs.py [--data ../shared/data] [--out .]
"""

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from xgamma import plotting  # noqa: E402
from xgamma.irf import read_irf  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", type=Path, default=Path(os.environ.get("XGAMMA_DATA", "../shared/data")))
parser.add_argument("--out", type=Path, default=Path("."))
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)

sources = {
    "hess-23523": (args.data / "hess-dl3-dr1/data/hess_dl3_dr1_obs_id_023523.fits.gz", ["AEFF", "EDISP", "PSF", "BKG"]),
    "cta-prod5-south": (
        args.data / "cta-caldb/Prod5-South-20deg-AverageAz-14MSTs37SSTs.180000s-v0.1.fits.gz",
        ["EFFECTIVE AREA", "ENERGY DISPERSION", "POINT SPREAD FUNCTION", "BACKGROUND"],
    ),
}
for name, (path, hdus) in sources.items():
    aeff, edisp, psf, bkg = (read_irf(path, hdu) for hdu in hdus)
    print(aeff, psf, sep="\n")
    fig, axes = plt.subplots(2, 2, figsize=(11, 9))
    plotting.plot_aeff(aeff, ax=axes[0, 0])
    plotting.plot_edisp(edisp.normalize(), ax=axes[0, 1])
    plotting.plot_psf_containment(psf, ax=axes[1, 0])
    plotting.plot_background(bkg, ax=axes[1, 1])
    fig.suptitle(name)
    fig.tight_layout()
    fig.savefig(args.out / f"irfs-{name}.png", dpi=80)
    print(f"saved {args.out / f'irfs-{name}.png'}")
