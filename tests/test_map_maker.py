"""MapDatasetMaker on H.E.S.S. DR1 Crab runs, checked against independent computations and the reference."""

import astropy.units as u
import numpy as np
import pytest
import xarray as xr
import yaml
from astropy.coordinates import AltAz, SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from regions import CircleSkyRegion

from xgamma.axes import MapAxis
from xgamma.data import DataStore
from xgamma.data.gti import GTI
from xgamma.data.observation import MissingHDUError
from xgamma.datasets.map import MapDataset
from xgamma.datasets.stacking import stack_datasets
from xgamma.geom import WcsGeom
from xgamma.irf import Background3D
from xgamma.makers import utils
from xgamma.makers.fov_background import FoVBackgroundMaker
from xgamma.makers.map import MapDatasetMaker
from xgamma.makers.safe_mask import SafeMaskMaker

OBS_IDS = [23523, 23526, 23559, 23592]
CRAB = SkyCoord(83.633, 22.014, unit="deg")


@pytest.fixture(scope="module")
def reference(reference_dir):
    return yaml.safe_load((reference_dir / "crab-3d.yaml").read_text())


@pytest.fixture(scope="module")
def observations(hess_dir):
    obs = DataStore.from_dir(hess_dir).get_observations(OBS_IDS)
    return [o.load() for o in obs]


def crab_template():
    """The stacked geometry of crab-3d.yaml: 4 x 4 deg, 0.02 deg pixels, 4 reco and 10 true energy bins."""
    energy = MapAxis.from_energy_bounds(1, 10, 4)
    energy_true = MapAxis.from_energy_bounds(0.5, 20, 10, name="energy_true")
    geom = WcsGeom.create(skydir=CRAB, width=4, binsz=0.02, frame="icrs", proj="CAR", axes=[energy])
    return MapDataset.create(geom, energy_axis_true=energy_true, name="stacked")


def reduce_crab_runs(observations, template):
    """Per-run datasets as in crab-3d.yaml (cutout, maker, safe mask, FoV background fit), named by obs id."""
    exclusion = ~template.geom.to_image().region_mask(CircleSkyRegion(CRAB, 0.3 * u.deg))
    exclusion.attrs["wcs"] = template.geom.to_header_string()
    makers = [
        MapDatasetMaker(),
        SafeMaskMaker(methods=["offset-max", "aeff-max"], offset_max="2.5 deg"),
        FoVBackgroundMaker(method="fit", exclusion_mask=exclusion),
    ]
    out = []
    for obs in observations:
        dataset = template.cutout(obs.pointing, width="5 deg", name=str(obs.obs_id))
        for maker in makers:
            dataset = maker.run(dataset, obs)
        out.append(dataset)
    return out


@pytest.fixture(scope="module")
def template():
    return crab_template()


@pytest.fixture(scope="module")
def crab_datasets(observations, template):
    return reduce_crab_runs(observations, template)


def _independent_counts(obs, template):
    """Events in the geometry, energy range and safe mask, straight from the event list with astropy."""
    events = obs.events.ds
    wcs = WCS(fits.Header.fromstring(template.data["counts"].attrs["wcs"], sep="\n"))
    coords = SkyCoord(events["ra"].values, events["dec"].values, unit="deg")
    x, y = wcs.world_to_pixel(coords)
    ix, iy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    energy = events["energy"].values
    inside = (ix >= 0) & (ix < 200) & (iy >= 0) & (iy < 200) & (energy >= 1) & (energy < 10)
    # offset-max: pixel centre within 2.5 deg of the pointing (cutout: 5 deg = 250 pix around it, trimmed)
    centre = wcs.pixel_to_world(ix[inside], iy[inside])
    keep = centre.separation(obs.pointing).deg < 2.5
    px, py = (float(v) for v in wcs.world_to_pixel(obs.pointing))
    lo_x, lo_y = int(np.ceil(px - 125)), int(np.ceil(py - 125))
    keep &= (ix[inside] >= lo_x) & (ix[inside] < lo_x + 250) & (iy[inside] >= lo_y) & (iy[inside] < lo_y + 250)
    # aeff-max at the cutout centre (the pointing: offset 0): threshold below 1 TeV for these runs
    e_true = np.geomspace(0.5, 20, 11)
    e_true = np.sqrt(e_true[1:] * e_true[:-1])
    area = obs.aeff.evaluate(energy_true=e_true, offset=0.0).value
    assert e_true[np.argmax(area > 0.1 * area.max())] < 1.0
    return int(keep.sum())


def test_crab_stacked_counts_shapes_and_background(crab_datasets, template, observations, reference):
    stacked = stack_datasets(crab_datasets, template=template)
    ref = reference["stacked_before_fit"]
    counts = float(stacked.counts.values[stacked.mask_safe.values].sum())
    expected = sum(_independent_counts(obs, template) for obs in observations)
    assert counts == expected == ref["counts_total_in_mask_safe"]
    assert stacked.counts.shape == tuple(ref["counts_shape"])
    assert stacked.exposure.shape == tuple(ref["exposure_shape"])
    assert stacked.psf.shape == tuple(ref["psf_shape"])
    assert stacked.edisp.shape == tuple(ref["edisp_shape"])
    background = float(stacked.background.values[stacked.mask_safe.values].sum())
    assert background == pytest.approx(ref["background_total_in_mask_safe"], rel=5e-3)
    # MapDataset.stack (pairwise, into the template's grid) gives the same counts
    chained = template
    for dataset in crab_datasets:
        chained = chained.stack(dataset)
    assert float(chained.counts.values[chained.mask_safe.values].sum()) == counts


def test_fov_background_norms_per_run(crab_datasets, reference):
    """Same background maps as the reference tool: the fitted norms agree to 0.05 % per run."""
    ref = reference["fov_background_norms_per_run"]
    for dataset in crab_datasets:
        norm = dataset.data.attrs["fov_background_norm"]
        assert norm == pytest.approx(ref[str(dataset.obs_ids[0])], rel=5e-4)


def test_exposure_at_crab_is_aeff_times_livetime(crab_datasets, template, observations):
    stacked = stack_datasets(crab_datasets, template=template)
    x, y = (int(np.rint(v)) for v in template.geom.coord_to_pix(CRAB))
    # the pixel centre nearest to the Crab
    centre = template.geom.pix_to_skycoord(x, y)
    energy = template.energy_axis_true.center
    expected = sum(
        obs.aeff.evaluate(energy_true=energy, offset=centre.separation(obs.pointing)).to_value("cm2")
        * obs.livetime.to_value("s")
        for obs in observations
    )
    assert np.allclose(stacked.exposure.values[:, y, x], expected, rtol=1e-6)


def test_psf_and_edisp_maps_at_the_crab(crab_datasets, observations):
    dataset, obs = crab_datasets[0], observations[0]
    geom_irf = dataset.geom_irf
    x, y = (int(np.rint(v)) for v in geom_irf.coord_to_pix(CRAB))
    offset = geom_irf.pix_to_skycoord(x, y).separation(obs.pointing)
    energy = dataset.energy_axis_true.center[:, None]
    rad = MapAxis.from_coords(dataset.data, "rad").center[None, :]
    expected = obs.psf.evaluate(energy_true=energy, offset=offset, rad=rad).to_value("sr-1")
    assert np.allclose(dataset.psf.values[:, :, y, x], expected, rtol=1e-8, atol=1e-12 * expected.max())
    kernel = obs.edisp.to_edisp_kernel(offset, dataset.energy_axis_true, dataset.energy_axis)
    assert np.allclose(dataset.edisp.values[:, :, y, x], kernel.values, atol=1e-10)
    assert (dataset.edisp.sum("energy") <= 1 + 1e-9).all()
    assert dataset.edisp.max() > 0.3


def test_missing_irf_is_named(observations, template):
    obs = observations[0]
    stripped = type(obs)(obs.obs_id, {k: v for k, v in obs.locations.items() if k != "bkg"}, obs.obs_info, obs.meta)
    with pytest.raises(MissingHDUError, match=r"observation 23523 has no 'bkg' IRF.*'background'"):
        MapDatasetMaker().run(template.cutout(obs.pointing, 5), stripped)
    dataset = MapDatasetMaker(selection=["counts", "exposure"]).run(template.cutout(obs.pointing, 5), stripped)
    assert set(dataset.data.data_vars) == {"counts", "exposure", "mask_safe", "livetime"}
    # only the coordinates of the products made (no PSF rad or IRF grid left over from the template)
    assert set(dataset.data.dims) == {"energy", "energy_true", "y", "x"}
    assert set(dataset.data.coords) == {f"{a}{s}" for a in ("energy", "energy_true") for s in ("", "_min", "_max")}
    with pytest.raises(ValueError, match="unknown selection"):
        MapDatasetMaker(selection=["count"]).run(template, obs)


# ---- background: integral, alignment, FoV sign convention ----------------------------
def test_background_sum_equals_direct_integral_of_the_rate(observations):
    """Map summed over a field larger than the model equals the rate integrated in FoV coordinates ("exact" rule)."""
    obs = observations[0]
    bkg = obs.bkg
    energy = MapAxis.from_energy_bounds(1, 10, 4)
    geom = WcsGeom.create(skydir=obs.pointing, width=6.5, binsz=0.02, proj="TAN", axes=[energy])
    counts = utils.make_background(bkg, geom, obs.pointing, "1000 s", oversampling=2, energy_integration="exact")
    # direct: midpoint rule on the FoV sphere, dOmega = cos(lat) dlon dlat, fine log-energy trapezoid
    step = 0.01
    grid = np.arange(-2.5 + step / 2, 2.5, step)
    lon, lat = np.meshgrid(grid, grid, indexing="ij")
    domega = np.cos(np.radians(lat)) * np.radians(step) ** 2
    edges = energy.edges.to_value("TeV")
    for i in range(energy.nbin):
        e = np.geomspace(edges[i], edges[i + 1], 41)
        rate = bkg.evaluate(energy=e[:, None, None], fov_lon=lon, fov_lat=lat).to_value("s-1 TeV-1 sr-1")
        per_energy = (rate * domega).sum(axis=(1, 2))
        integral = np.trapezoid(per_energy * e, np.log(e)) * 1000
        assert counts[i].sum() == pytest.approx(integral, rel=3e-3)


def _synthetic_bkg(profile, alignment):
    energy = MapAxis.from_energy_bounds(0.1, 100, 12, name="energy")
    lon = MapAxis.from_bounds(-3, 3, 60, name="fov_lon", unit="deg")
    lat = MapAxis.from_bounds(-3, 3, 60, name="fov_lat", unit="deg")
    e = energy.center.value[:, None, None]
    values = e**-2.5 * np.broadcast_to(profile(lon.center.value[:, None], lat.center.value[None, :]), (60, 60))
    coords = {**energy.to_coords(), **lon.to_coords(), **lat.to_coords()}
    data = xr.DataArray(values, dims=("energy", "fov_lon", "fov_lat"), coords=coords,
                        attrs={"units": "s-1 TeV-1 sr-1", "FOVALIGN": alignment})
    return Background3D(data)


def _map_direction(counts, geom, pointing):
    """Position angle (deg, east of north) of the counts-weighted centroid seen from the pointing.

    Only a disk of 1.9 deg radius is used, so the square map edges cannot bias the direction.
    """
    lon, lat = geom.to_image().get_coord()
    sky = SkyCoord(lon, lat, unit="deg")
    weights = counts.sum(axis=0) * (sky.separation(pointing).deg < 1.9)
    fov_lon, fov_lat = utils.fov_coordinates(sky, pointing, "RADEC")
    return np.degrees(np.arctan2((weights * fov_lon).sum(), (weights * fov_lat).sum()))


@pytest.fixture(scope="module")
def short_gti(observations):
    obs = observations[0]
    return GTI.create(obs.tstart, obs.tstart + 300 * u.s), obs


def test_radial_background_is_the_same_for_both_alignments(short_gti):
    gti, obs = short_gti
    gauss = lambda x, y: np.exp(-(x**2 + y**2) / 2)
    geom = WcsGeom.create(skydir=obs.pointing, width=4, binsz=0.05, axes=[MapAxis.from_energy_bounds(1, 10, 2)])
    kwargs = {"gti": gti, "location": obs.observatory_location}
    radec = utils.make_background(_synthetic_bkg(gauss, "RADEC"), geom, obs.pointing, 300, **kwargs)
    altaz = utils.make_background(_synthetic_bkg(gauss, "ALTAZ"), geom, obs.pointing, 300, **kwargs)
    assert np.allclose(altaz, radec, rtol=3e-3)


def test_asymmetric_background_rotates_with_the_field(short_gti):
    """fov_lat points to the zenith for ALTAZ (north for RADEC); fov_lon is 90 deg further, as RA is from Dec."""
    gti, obs = short_gti
    geom = WcsGeom.create(skydir=obs.pointing, width=4, binsz=0.05, axes=[MapAxis.from_energy_bounds(1, 10, 1)])
    kwargs = {"gti": gti, "location": obs.observatory_location}
    tmid = gti.time_ref + (gti.met_start[0] + 150) * u.s
    frame = AltAz(obstime=tmid, location=obs.observatory_location)
    pnt = obs.pointing.transform_to(frame)
    up = SkyCoord(az=pnt.az, alt=pnt.alt + 0.5 * u.deg, frame=frame).icrs
    zenith_pa = obs.pointing.position_angle(up).deg
    for axis, pa_offset in (("lat", 0.0), ("lon", 90.0)):
        ramp = (lambda x, y: np.exp(y)) if axis == "lat" else (lambda x, y: np.exp(x))
        radec = utils.make_background(_synthetic_bkg(ramp, "RADEC"), geom, obs.pointing, 300, **kwargs)
        altaz = utils.make_background(_synthetic_bkg(ramp, "ALTAZ"), geom, obs.pointing, 300, **kwargs)
        assert _map_direction(radec, geom, obs.pointing) == pytest.approx(pa_offset, abs=0.5)
        angle = (_map_direction(altaz, geom, obs.pointing) - zenith_pa - pa_offset + 180) % 360 - 180
        assert abs(angle) < 1.0
        assert radec.sum() == pytest.approx(altaz.sum(), rel=2e-2)


def test_altaz_time_steps_cover_the_gti(observations):
    obs = observations[0]
    times, weights = utils.altaz_time_steps(obs.gti, obs.pointing, obs.observatory_location, "0.5 deg")
    assert weights.sum() == pytest.approx(obs.gti.time_sum.to_value("s"))
    assert len(times) >= 2
    coarse, _ = utils.altaz_time_steps(obs.gti, obs.pointing, obs.observatory_location, "90 deg")
    assert len(coarse) == 1


def test_fov_radec_matches_astropy_offset_frame():
    from astropy.coordinates import SkyOffsetFrame

    pointing = SkyCoord(83.6, 22.0, unit="deg")
    sky = SkyCoord([84.6, 83.6, 82.0], [22.0, 23.5, 20.0], unit="deg")
    lon, lat = utils.fov_coordinates(sky, pointing, "RADEC")
    off = sky.transform_to(SkyOffsetFrame(origin=pointing))
    assert np.allclose(lon, off.lon.wrap_at(180 * u.deg).deg, atol=1e-9)
    assert np.allclose(lat, off.lat.deg, atol=1e-9)
    assert lon[0] > 0  # east of the pointing (larger RA): positive fov_lon
