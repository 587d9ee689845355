"""Duration-aware reward: percentiles within duration buckets, with hand-computed answers."""

import numpy as np

from models.reward_shaping import duration_aware_reward, duration_bucket, duration_edges, play_percentile


def test_edges_and_buckets():
    d = np.array([10, 20, 30, 40, 100, 200, 300, 400], float)
    edges = duration_edges(d, 2)
    assert edges.tolist() == [70.0]  # the median
    assert duration_bucket(np.array([10, 70, 400, np.nan, 0]), edges).tolist() == [0, 1, 1, -1, -1]


def test_known_answer_long_videos_do_not_win_by_length():
    # Short videos (10-40 s) played 5, 10, 15, 20 s; long ones (100-400 s) played 50, 100, 150, 200 s.
    durations = np.array([10, 20, 30, 40, 100, 200, 300, 400], float)
    play = np.array([5, 10, 15, 20, 50, 100, 150, 200], float)
    pct, edges = duration_aware_reward(play, durations, n_buckets=2)
    # Mid-rank percentile within each bucket: (n_less + n_equal / 2) / n.
    expected = [0.125, 0.375, 0.625, 0.875] * 2
    np.testing.assert_allclose(pct, expected)
    # Raw play time would rank every long-video play above every short one; the shaped reward does not.
    assert pct[3] > pct[4]


def test_ties_missing_values_and_groups():
    durations = np.array([60, 60, 60, 60, 60, np.nan], float)
    play = np.array([30, 30, 10, np.nan, 50, 5], float)
    pct = play_percentile(play, durations, np.zeros(0))
    np.testing.assert_allclose(pct[:3], [0.5, 0.5, 0.125])  # tie: both (1 + 0.5 * 2) / 4 = 0.5
    assert pct[4] == 0.875 and np.isnan(pct[3]) and np.isnan(pct[5])
    # Per user: each user's plays ranked among their own.
    users = np.array(["a", "a", "b", "b", "b", "b"])
    by_user = play_percentile(play, durations, np.zeros(0), groups=users)
    np.testing.assert_allclose(by_user[[0, 1, 2, 4]], [0.5, 0.5, 0.25, 0.75])
