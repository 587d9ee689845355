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


def test_v2_advantages_known_answer():
    from models.reward_shaping import log_duration_bucket, v2_advantages

    assert log_duration_bucket(np.array([1, 3, 4, 100, 0, np.nan]), 2.0).tolist() == [0, 1, 2, 6, -1, -1]
    # User a: four plays of 16-31 s videos (bucket 4) and one 100 s video (bucket 6, alone); user b: two plays.
    users = np.array(["a", "a", "a", "a", "a", "b", "b"])
    durations = np.array([20, 20, 30, 16, 100, 20, 20], float)
    play = np.array([2, 8, 6, 4, 90, 20, 1], float)
    dislike = np.array([0, 0, 0, 1, 0, 0, 0])
    adv = v2_advantages(users, play, durations, dislike, base=2.0)
    # a's bucket-4 percentiles: 2 -> 0.125, 8 -> 0.875, 6 -> 0.625, 4 -> 0.375 (disliked: -1);
    # a's lone 100 s play: 0.5 (dropped, however long); b: 20 s -> 0.75 (+1), 1 s -> 0.25.
    expected = np.array([np.nan, 1.0, np.nan, -1.0, np.nan, 1.0, np.nan])
    np.testing.assert_array_equal(adv, expected)
    # The same play time is judged against the user's own plays: b's 20 s is top, a's 20 s-long 2 s play is not.
    assert np.isnan(v2_advantages(users, play, durations, np.zeros(7))[0])
