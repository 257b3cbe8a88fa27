"""Plots of maps and instrument responses.

Kept apart from the data classes: each function takes the object to draw,
imports matplotlib only when called, accepts an optional ``ax`` and returns
the axes it drew on. Install the ``plot`` extra (``pip install xgamma[plot]``).

Which one to use when:

- `plot_map`: a 2-D sky image (select or sum the other dims first);
- `plot_aeff`: effective area against true energy, one curve per offset;
- `plot_edisp`: migration density against true energy at one offset;
- `plot_psf_containment`: containment radius against true energy;
- `plot_background`: background rate per offset (BKG_2D) or FoV image (BKG_3D).
"""

from __future__ import annotations

import numpy as np

from .units import to_value

__all__ = ["plot_map", "plot_aeff", "plot_edisp", "plot_psf_containment", "plot_background"]


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def _axes(ax, **subplot_kw):
    if ax is not None:
        return ax
    return _pyplot().figure().add_subplot(**subplot_kw)


def plot_map(da, ax=None, add_cbar=True, stretch="linear", **imshow_kwargs):
    """Draw a 2-D WCS map with sky-coordinate axes.

    Parameters
    ----------
    da : `xarray.DataArray`
        Map with dims ``("y", "x")`` and a ``wcs`` attr (see
        `xgamma.geom.WcsGeom.to_dataarray`).
    ax : `astropy.visualization.wcsaxes.WCSAxes`, optional
        Axes to draw on; created with the map's WCS projection if omitted.
    add_cbar : bool
        Add a colour bar labelled with the map's name and unit.
    stretch : {"linear", "sqrt", "log"}
        Colour scale.
    **imshow_kwargs
        Passed to ``imshow`` (``cmap``, ``vmin``, ``vmax`` ...).

    Returns
    -------
    ax : the axes drawn on.

    Raises
    ------
    ValueError
        If the map has dims other than ``y`` and ``x``, naming them.
    """
    from .geom import WcsGeom

    extra = [d for d in da.dims if d not in ("y", "x")]
    if extra:
        raise ValueError(
            f"plot_map draws 2-D images; this map also has dims {extra}: "
            f"select one bin (da.isel({extra[0]}=0)) or sum (da.sum({extra[0]!r})) first"
        )
    geom = WcsGeom.from_dataarray(da)
    ax = _axes(ax, projection=geom.wcs)
    from matplotlib import colors

    norms = {"linear": colors.Normalize, "sqrt": lambda **kw: colors.PowerNorm(0.5, **kw), "log": colors.LogNorm}
    if stretch not in norms:
        raise ValueError(f"stretch must be one of {sorted(norms)}, got {stretch!r}")
    vmin, vmax = imshow_kwargs.pop("vmin", None), imshow_kwargs.pop("vmax", None)
    imshow_kwargs.setdefault("interpolation", "nearest")
    image = ax.imshow(
        np.asarray(da.transpose("y", "x").values), origin="lower", norm=norms[stretch](vmin=vmin, vmax=vmax), **imshow_kwargs
    )
    if hasattr(ax, "coords"):
        lon, lat = ax.coords[0], ax.coords[1]
        names = ("Galactic Longitude", "Galactic Latitude") if geom.frame == "galactic" else ("Right Ascension", "Declination")
        lon.set_axislabel(names[0])
        lat.set_axislabel(names[1])
    if add_cbar:
        label = " ".join(filter(None, [str(da.name or ""), f"[{da.attrs.get('units')}]" if da.attrs.get("units") else ""]))
        ax.figure.colorbar(image, ax=ax, label=label)
    return ax


def plot_aeff(aeff, offset=("0 deg", "0.5 deg", "1 deg", "1.5 deg", "2 deg"), ax=None):
    """Effective area (cm2) against true energy (TeV), one curve per offset.

    Parameters
    ----------
    aeff : `xgamma.irf.EffectiveAreaTable2D`
    offset : sequence of `~astropy.units.Quantity` or str or float
        FoV offsets (plain numbers in deg).
    ax : `matplotlib.axes.Axes`, optional
    """
    ax = _axes(ax)
    energy = aeff.axes["energy_true"].center
    for value in np.atleast_1d(offset):
        offset_deg = to_value(value, "deg", "offset")
        area = aeff.evaluate(energy_true=energy, offset=offset_deg).to_value("cm2")
        ax.plot(energy.to_value("TeV"), area, label=f"offset {offset_deg:g} deg")
    ax.set(xscale="log", yscale="log", xlabel="True energy [TeV]", ylabel="Effective area [cm2]")
    ax.legend()
    return ax


def plot_edisp(edisp, offset="0.5 deg", ax=None, add_cbar=True):
    """Migration density dP/dmigra against true energy at one offset."""
    ax = _axes(ax)
    offset_deg = to_value(offset, "deg", "offset")
    energy = edisp.axes["energy_true"].center.to_value("TeV")
    migra = edisp.axes["migra"].center.value
    density = edisp.evaluate(energy_true=energy[:, None], migra=migra[None, :], offset=offset_deg).value
    mesh = ax.pcolormesh(energy, migra, density.T, shading="nearest")
    ax.set(xscale="log", xlabel="True energy [TeV]", ylabel="Migra (E_reco / E_true)", title=f"offset {offset_deg:g} deg")
    if add_cbar:
        ax.figure.colorbar(mesh, ax=ax, label="dP/dmigra")
    return ax


def plot_psf_containment(psf, fraction=0.68, offset=("0 deg", "1 deg", "2 deg"), ax=None):
    """Containment radius (deg) for ``fraction`` against true energy, per offset."""
    ax = _axes(ax)
    energy = psf.axes["energy_true"].center
    for value in np.atleast_1d(offset):
        offset_deg = to_value(value, "deg", "offset")
        radius = psf.containment_radius(fraction, energy_true=energy, offset=offset_deg).to_value("deg")
        ax.plot(energy.to_value("TeV"), radius, label=f"offset {offset_deg:g} deg")
    ax.set(xscale="log", xlabel="True energy [TeV]", ylabel=f"{100 * fraction:g}% containment radius [deg]")
    ax.legend()
    return ax


def plot_background(bkg, energy="1 TeV", ax=None, add_cbar=True):
    """Background rate (s-1 TeV-1 sr-1) at one reconstructed energy.

    A `~xgamma.irf.Background2D` is drawn against offset, a
    `~xgamma.irf.Background3D` as an image in FoV coordinates.
    """
    ax = _axes(ax)
    energy_tev = to_value(energy, "TeV", "energy")
    axes = bkg.axes
    unit = bkg.unit.to_string()
    if "offset" in axes:
        offset = axes["offset"].center.to_value("deg")
        ax.plot(offset, bkg.evaluate(energy=energy_tev, offset=offset).value)
        ax.set(xlabel="Offset [deg]", ylabel=f"Background rate [{unit}]", yscale="log")
        return ax
    lon = axes["fov_lon"].center.to_value("deg")
    lat = axes["fov_lat"].center.to_value("deg")
    rate = bkg.evaluate(energy=energy_tev, fov_lon=lon[None, :], fov_lat=lat[:, None]).value
    mesh = ax.pcolormesh(lon, lat, rate, shading="nearest")
    ax.set(xlabel="FoV lon [deg]", ylabel="FoV lat [deg]", title=f"E = {energy_tev:g} TeV", aspect="equal")
    if add_cbar:
        ax.figure.colorbar(mesh, ax=ax, label=f"Background rate [{unit}]")
    return ax
