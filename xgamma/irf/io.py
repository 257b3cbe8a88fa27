"""Choosing and building the IRF class of a DL3 HDU.

`load_irf` is the entry point used by `Observation`: it takes an HDU already
read with `xgamma.io.fits.read_hdus` and the HDU-index class (``aeff_2d``,
``edisp_2d``, ``psf_table``, ``psf_3gauss``, ``psf_king``, ``bkg_2d``,
``bkg_3d``, ``rad_max_2d``), or decides the class from the header
(``HDUCLAS2`` + ``HDUCLAS4``, accepting the short CTA-1DC spellings ``2D``,
``3D``, ``3GAUSS``). `read_irf` reads the file first.
"""

from __future__ import annotations

import logging

from ..io.fits import HDUData, read_hdus
from .aeff import EffectiveAreaTable2D
from .background import Background2D, Background3D
from .core import IRFClassError
from .edisp import EnergyDispersion2D
from .psf import PSFTable
from .psf_parametric import PSF3Gauss, PSFKing
from .rad_max import RadMax2D

__all__ = ["IRF_CLASSES", "irf_class", "hdu_class_from_header", "load_irf", "read_irf"]

log = logging.getLogger(__name__)

#: HDU-index class -> IRF class.
IRF_CLASSES = {
    cls.tag: cls
    for cls in (
        EffectiveAreaTable2D,
        EnergyDispersion2D,
        PSFTable,
        PSF3Gauss,
        PSFKing,
        Background2D,
        Background3D,
        RadMax2D,
    )
}

# HDUCLAS2 spellings -> family
_CLAS2 = {
    "EFF_AREA": "aeff",
    "AEFF": "aeff",
    "EDISP": "edisp",
    "PSF": "psf",
    "RPSF": "psf",
    "BKG": "bkg",
    "RAD_MAX": "rad_max",
}
# family prefixes of full HDUCLAS4 values (AEFF_2D, PSF_3GAUSS, RAD_MAX_2D ...)
_CLAS4_PREFIXES = ("AEFF_", "EDISP_", "PSF_", "BKG_", "RAD_MAX_")


def irf_class(hdu_class, where: str = ""):
    """IRF class for an HDU-index class string (case-insensitive).

    Raises
    ------
    IRFClassError
        For an unknown class; the message lists the known ones.
    """
    key = str(hdu_class).strip().lower()
    if key not in IRF_CLASSES:
        prefix = f"{where}: " if where else ""
        raise IRFClassError(f"{prefix}unknown IRF class {hdu_class!r}; known classes: {sorted(IRF_CLASSES)}")
    return IRF_CLASSES[key]


def hdu_class_from_header(header, where: str = "") -> str:
    """HDU-index class decided from ``HDUCLAS2`` and ``HDUCLAS4``.

    Accepts ``AEFF_2D`` and CTA-1DC's ``2D`` (with ``HDUCLAS2 = EFF_AREA``),
    ``PSF_3GAUSS``/``3GAUSS``, ``BKG_3D``/``3D`` and so on.

    Raises
    ------
    IRFClassError
        If the keywords do not name a known class.
    """
    clas2 = str(header.get("HDUCLAS2", "")).strip().upper()
    clas4 = str(header.get("HDUCLAS4", "")).strip().upper()
    family = _CLAS2.get(clas2)
    short = clas4
    for prefix in _CLAS4_PREFIXES:
        if clas4.startswith(prefix):
            family = family or prefix[:-1].lower()
            short = clas4[len(prefix):]
            break
    key = f"{family}_{short}".lower() if family and short else ""
    if key not in IRF_CLASSES:
        prefix = f"{where}: " if where else ""
        raise IRFClassError(
            f"{prefix}cannot tell the IRF class from HDUCLAS2={clas2!r}, HDUCLAS4={clas4!r}; "
            f"known classes: {sorted(IRF_CLASSES)}"
        )
    return key


def load_irf(hdu_data: HDUData, hdu_class: str | None = None):
    """Build the IRF object of one HDU.

    Parameters
    ----------
    hdu_data : `~xgamma.io.fits.HDUData`
        The HDU, already read by `~xgamma.io.fits.read_hdus`.
    hdu_class : str, optional
        HDU-index class (``aeff_2d``, ``edisp_2d``, ``psf_table``,
        ``psf_3gauss``, ``psf_king``, ``bkg_2d``, ``bkg_3d``,
        ``rad_max_2d``). When None it is decided from the header. When given
        and the header names another class, the given class wins and a
        warning is logged.

    Returns
    -------
    IRF
        `EffectiveAreaTable2D`, `EnergyDispersion2D`, `PSFTable`, `PSF3Gauss`,
        `PSFKing`, `Background2D`, `Background3D` or `RadMax2D`.

    Raises
    ------
    IRFClassError
        (a `DL3FileError` and a `ValueError`) for an unknown class, naming
        file, HDU and class.
    DL3FileError
        For a missing column or inconsistent shapes, naming file, HDU and column.
    """
    where = f"{hdu_data.filename}[{hdu_data.name}]"
    if hdu_class is None:
        hdu_class = hdu_class_from_header(hdu_data.keywords, where)
    cls = irf_class(hdu_class, where)
    try:
        from_header = hdu_class_from_header(hdu_data.keywords)
    except IRFClassError:
        from_header = None
    if from_header is not None and from_header != cls.tag:
        log.warning("%s: HDU index says %s but the header says %s; reading as %s", where, cls.tag, from_header, cls.tag)
    return cls.from_hdu(hdu_data)


def read_irf(path, hdu, hdu_class: str | None = None):
    """Read one IRF HDU from a FITS file (local path or fsspec URL).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    hdu : str or int
        HDU name or index.
    hdu_class : str, optional
        As in `load_irf`.

    Returns
    -------
    IRF
    """
    return load_irf(read_hdus(path, [hdu])[hdu], hdu_class)
