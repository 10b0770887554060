"""The PNG: written, non-empty, and its heatmap has one row per working PE (read back from pixels)."""
import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib import colormaps

from kernbench.common.pe_commands import Unit

from report_helpers import line_pipeline, ring_exchange


def heatmap_row_bands(png, box, column: int, n_cols: int):
    """Colour bands down the middle of heatmap column ``column``: the median RGB colour of each
    run of non-white pixels between the white row separators (median: edges are anti-aliased)."""
    img = mpimg.imread(png)[..., :3]
    left, top, right, bottom = box
    x = int(left + (column + 0.5) * (right - left) / n_cols)
    y0, y1 = int(np.ceil(top)) + 2, int(np.floor(bottom)) - 2  # inside the axes frame
    strip = img[y0:y1, x]
    white = strip.min(axis=1) > 0.95
    bands, cur = [], []
    for px, w in zip(strip, white):
        if w:
            if cur:
                bands.append(np.median(cur, axis=0))
            cur = []
        else:
            cur.append(px)
    if cur:
        bands.append(np.median(cur, axis=0))
    return bands


def test_png_written_with_one_heatmap_row_per_working_pe(tmp_path):
    r = line_pipeline(n_pes=5)  # 5 working PEs of 32
    p = tmp_path / "p.png"
    data = r.plot(p)
    assert p.stat().st_size > 10_000
    img = mpimg.imread(p)
    assert img.shape[:2] == (data.size_px[1], data.size_px[0])
    assert img[..., :3].std() > 0.05  # not a blank image
    assert data.row_pes == [0, 1, 2, 3, 4]
    assert data.heatmap.shape == (5, len(data.units))
    # Plotted values are busy / total cycles.
    u = data.units.index("GEMM")
    assert np.allclose(data.heatmap[:, u], r.unit_counters["busy"][:5, Unit.GEMM] / r.cycles)
    bands = heatmap_row_bands(p, data.heatmap_box, u, len(data.units))
    assert len(bands) == 5


def test_heatmap_pixels_follow_utilization(tmp_path):
    # RX_W: PE 0 (the west end) never receives (busy 0, the bottom colour of viridis), PEs 1-2
    # wait on their recv for most of the launch (bright).
    r = line_pipeline(n_pes=3)
    p = tmp_path / "p.png"
    data = r.plot(p)
    col = data.units.index("RX_W")
    bands = heatmap_row_bands(p, data.heatmap_box, col, len(data.units))
    assert len(bands) == 3
    cmap = colormaps["viridis"]
    for band, value in zip(bands, data.heatmap[:, col]):
        assert np.allclose(band, cmap(value)[:3], atol=0.03), (band, value)
    assert data.heatmap[0, col] == 0.0 and data.heatmap[1, col] > 0.5


def test_gantt_lanes_of_chosen_pes(tmp_path):
    r = ring_exchange(n_pes=4, rounds=2)
    data = r.plot(tmp_path / "g.png", pes=[(2, 0)])
    assert data.gantt_pes == [2]
    # PE 2 uses VECTOR, DMA, TX_E and RX_W: one lane each, in unit order.
    assert data.gantt_lanes == [("PE (2, 0)", u) for u in ("VECTOR", "DMA", "TX_E", "RX_W")]
    assert len(data.row_pes) == 4


def test_default_gantt_picks_few_pes(tmp_path):
    r = line_pipeline(n_pes=6)
    data = r.plot(tmp_path / "d.png")
    assert 1 <= len(data.gantt_pes) <= 4
    assert 0 in data.gantt_pes
    # The PE whose last command ends at the launch's end is shown.
    ends = [r.engine.cmd_end[r.program.cmd_offsets[g]:r.program.cmd_offsets[g + 1]].max() for g in range(6)]
    assert int(np.argmax(ends)) in data.gantt_pes


def test_bad_pe_is_rejected(tmp_path):
    r = line_pipeline(n_pes=2)
    with pytest.raises(ValueError, match="PE 99 does not exist"):
        r.plot(tmp_path / "x.png", pes=[99])


def test_the_plot_data_names_the_file_written_and_a_folder_path_is_refused(tmp_path):
    """A review: plot("myplot") wrote myplot.png (matplotlib's default suffix) and returned a
    PlotData naming "myplot", no file; a path ending in a separator gave a raw OSError naming
    'missing_dir/.png' in plot and 'dirx/' in to_perfetto and to_json, where the command line
    says it names a folder."""
    import os

    r = line_pipeline(n_pes=2)
    data = r.plot(tmp_path / "myplot")
    assert data.path == str(tmp_path / "myplot.png") and os.path.exists(data.path)
    assert r.plot(tmp_path / "p.svg").path == str(tmp_path / "p.svg")
    for call in (lambda p: r.plot(p), lambda p: r.to_perfetto(p), lambda p: r.to_json(p),
                 lambda p: r.write_json(p)):
        for p in (str(tmp_path / "dirx") + "/", str(tmp_path / "missing") + os.sep):
            with pytest.raises(ValueError, match="ends in a path separator, which names a folder"):
                call(p)
    assert not any(n.startswith(("dirx", "missing")) for n in os.listdir(tmp_path))
    # (a breaker: plot("p") checked p and wrote p.png, a folder here; "my.plot" failed in
    # matplotlib after drawing)
    os.mkdir(tmp_path / "q.png")
    with pytest.raises(ValueError, match=r"plot: .*q\.png' is a directory"):
        r.plot(tmp_path / "q")
    with pytest.raises(ValueError, match=r"plot: .*my\.plot': matplotlib writes .*not \.plot"):
        r.plot(tmp_path / "my.plot")
