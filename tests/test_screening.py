import math

from osteo_engine.screening import DISCLAIMER, ReferPolicy, decide

POLICY = ReferPolicy(min_bones=5, max_uncertainty=0.3, margin=0.05)


def test_confident_answers_on_either_side_of_the_threshold():
    assert decide(0.8, 7, 0.1, 0.4, POLICY)[0] == "osteoporosis"
    assert decide(0.1, 7, 0.1, 0.4, POLICY)[0] == "normal"


def test_unreliable_answers_are_referred_with_every_reason():
    decision, reasons = decide(0.42, 3, 0.5, 0.4, POLICY)
    assert decision == "refer" and len(reasons) == 3
    assert any("3 of 7 bones" in r for r in reasons)
    assert any("uncertain" in r for r in reasons)
    assert any("within 0.05" in r for r in reasons)
    assert decide(math.nan, 0, 0.1, 0.4, POLICY)[0] == "refer"


def test_the_disclaimer_says_research_use_and_not_a_diagnosis():
    assert "Research" in DISCLAIMER and "not a diagnosis" in DISCLAIMER
