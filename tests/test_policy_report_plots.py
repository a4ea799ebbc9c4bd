"""The policy report's win-rate plot draws the raw, LC and SC win rates with their intervals."""

from __future__ import annotations


def drawn_points(plot, *args):
    """Run ``plot(*args)`` and return, for its one figure, the y tick labels and every (x, y)
    point drawn in data coordinates (markers and interval ends), read from the axes before the
    figure is closed."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    drawn = []
    real_savefig = plt.Figure.savefig

    def keep(fig, *a, **kw):
        (ax,) = fig.axes
        drawn.append(({round(float(y)): t.get_text() for y, t in zip(ax.get_yticks(), ax.get_yticklabels())},
                      [tuple(xy) for line in ax.lines if line.get_transform() == ax.transData  # not the 50% line
                       for xy in line.get_xydata().tolist()]))
        return real_savefig(fig, *a, **kw)

    plt.Figure.savefig = keep
    try:
        path = plot(*args)
    finally:
        plt.Figure.savefig = real_savefig
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (out,) = drawn
    return out


SUMMARY = {"n": 40, "win_rate": 0.7, "ci_low": 0.55, "ci_high": 0.85, "invalid": 0,
           "lc_win_rate": 0.6, "lc_ci_low": 0.45, "lc_ci_high": 0.75,
           "sc_win_rate": 0.52, "sc_ci_low": 0.3, "sc_ci_high": 0.74}


def test_win_rate_plot_draws_the_style_controlled_point_with_its_interval(tmp_path):
    from quillrl.eval.policy_report import plot_win_rate

    labels, points = drawn_points(plot_win_rate, SUMMARY, tmp_path / "win_rate.png")
    assert labels[2].startswith("win rate 70.0%") and labels[1] == "LC win rate\n60.0%"
    assert labels[0] == "SC win rate\n52.0%"
    for y, (w, lo, hi) in ((2, (0.7, 0.55, 0.85)), (1, (0.6, 0.45, 0.75)), (0, (0.52, 0.3, 0.74))):
        for x in (w, lo, hi):  # the point and both ends of its interval, on its own row
            assert any(abs(px - x) < 1e-12 and py == y for px, py in points), (y, x, points)


def test_win_rate_plot_without_style_counts_draws_no_sc_point(tmp_path):
    from quillrl.eval.policy_report import plot_win_rate

    summary = {**SUMMARY, "sc_win_rate": None, "sc_ci_low": None, "sc_ci_high": None,
               "lc_ci_low": None, "lc_ci_high": None}
    labels, points = drawn_points(plot_win_rate, summary, tmp_path / "win_rate.png")
    assert labels[0] == "SC win rate\n—"
    assert not [p for p in points if p[1] == 0]  # nothing on the SC row
    assert [p for p in points if p[1] == 1] == [(0.6, 1.0)]  # LC: its point alone, no interval given
