"""The bar a run under traffic is held to (issue 10): what EdgeInfer's silent fallback may hide."""

from simfleet.traffic import Verdict, longest_gap


def test_the_traffic_bar_allows_only_rare_read_timeouts_and_explains_every_made_up_answer():
    clean = Verdict(answers=5000, from_model=4995, failures=[], fallbacks={"read_timeout": 5, "non_200": 0})
    assert clean.problems() == []
    assert Verdict(5000, 4994, [], {"read_timeout": 6}).problems() == [
        "6 read-timeout fallbacks in 5000 answers"
    ]
    refused = Verdict(5000, 4999, [], {"read_timeout": 0, "connection_refused": 1}).problems()
    assert refused == ["fallbacks other than read timeouts: {'connection_refused': 1}"]
    unexplained = Verdict(5000, 4990, [], {"read_timeout": 2}).problems()
    assert unexplained == ["10 answers from neither model, 2 fallbacks counted"]
    assert Verdict(5000, 5000, ["HTTP 502: b''"], {}).problems() == [
        "1 failed requests, first: HTTP 502: b''"
    ]


def test_a_run_of_made_up_answers_is_a_gap_in_serving_even_when_the_rate_is_low():
    assert longest_gap([True, False, True, False, False, False, True, False]) == 3
    assert longest_gap([True] * 10) == 0 and longest_gap([]) == 0
    scattered = Verdict(5000, 4990, [], {"read_timeout": 10}, longest_gap=2)
    assert scattered.problems(read_timeouts_per_1000=40, longest_gap=25) == []
    stalled = Verdict(5000, 4970, [], {"read_timeout": 30}, longest_gap=30)
    assert stalled.problems(read_timeouts_per_1000=40, longest_gap=25) == [
        "30 answers in a row from neither model (at most 25)"
    ]
