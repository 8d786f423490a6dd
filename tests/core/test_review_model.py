"""The labels model: edits, undo/redo sequences, grouped edits, proposal tier, signals, agreement."""

from __future__ import annotations

import numpy as np
import pytest

from stanviewer.core.review.agreement import agreement, next_disagreement
from stanviewer.core.review.model import Change, EditError, LabelsModel, Selection


def spans(m: LabelsModel, tier: str = "annotator") -> list[tuple[int, int, str]]:
    return m.tier(tier).spans()


@pytest.fixture
def m() -> LabelsModel:
    return LabelsModel(100, ("annotator", "therapist"), user="ann")


def test_set_label_overwrites_and_paints(m: LabelsModel) -> None:
    m.set_label("annotator", 10, 30, "lean")
    m.set_label("annotator", 20, 25, "twist")
    assert spans(m) == [(10, 20, "lean"), (20, 25, "twist"), (25, 30, "lean")]
    m.set_label("annotator", 18, 27, "lean")  # same label joins what it touches
    assert spans(m) == [(10, 30, "lean")]
    assert m.clear("annotator", 0, 12) == 2
    assert spans(m) == [(12, 30, "lean")]
    iv = m.tier("annotator").intervals[0]
    assert iv.who == "ann" and iv.when.endswith("Z") and iv.origin == "manual"


def test_undo_redo_sequence(m: LabelsModel) -> None:
    history = []
    m.set_label("annotator", 10, 20, "a")
    history.append(m.spans())
    m.set_label("annotator", 30, 40, "b")
    history.append(m.spans())
    m.split("annotator", 35)
    history.append(m.spans())
    m.delete("annotator", 31)
    history.append(m.spans())
    m.relabel("annotator", 36, "c")
    history.append(m.spans())
    assert spans(m) == [(10, 20, "a"), (35, 40, "c")]
    for want in reversed(history[:-1]):
        assert m.undo()
        assert m.spans() == want
    assert m.undo() and spans(m) == []
    assert not m.undo() and not m.can_undo
    for want in history:
        assert m.redo()
        assert m.spans() == want
    assert not m.redo()
    m.undo()
    m.undo()
    m.set_label("annotator", 0, 5, "z")  # a new edit drops the redo stack
    assert not m.can_redo
    assert spans(m) == [(0, 5, "z"), (10, 20, "a"), (30, 35, "b"), (35, 40, "b")]


def test_group_is_one_undo_step(m: LabelsModel) -> None:
    changes: list[Change] = []
    m.sig_changed.connect(changes.append)
    with m.group("drag"):
        iv = m.create("annotator", 10, 11)
        for f in range(12, 30):
            iv = m.move_edge("annotator", iv.start, "right", f)
        with m.group("nested"):
            m.nudge("annotator", 10, "left", -2)
    assert spans(m) == [(8, 29, "compensation")]
    assert len(changes) == 1 + 18 + 1  # the view still sees every step of the drag
    assert m.undo_text == "drag"
    assert m.undo() and spans(m) == []
    assert not m.can_undo
    assert m.redo() and spans(m) == [(8, 29, "compensation")]
    with m.group("nothing"):
        pass
    assert m.undo_text == "drag"


def test_history_signal_and_undo_inside_group(m: LabelsModel) -> None:
    seen = []
    m.sig_history.connect(lambda u, r: seen.append((u, r)))
    m.set_label("annotator", 1, 2, "x")
    m.undo()
    m.redo()
    assert seen == [(True, False), (False, True), (True, False)]
    with m.group(), pytest.raises(EditError):
        m.undo()


def test_nudge_and_move_edge_clamp(m: LabelsModel) -> None:
    m.set_label("annotator", 10, 20, "a")
    m.set_label("annotator", 25, 30, "b")
    m.select("annotator", 12)
    assert m.selection == Selection("annotator", 10, 20)
    iv = m.nudge("annotator", 12, "right", +1)
    assert (iv.start, iv.end) == (10, 21)
    assert m.selection == Selection("annotator", 10, 21)  # the selection follows the edge
    iv = m.move_edge("annotator", 12, "right", 99)
    assert iv.end == 25  # stops at the neighbour
    iv = m.move_edge("annotator", 12, "left", 30)
    assert (iv.start, iv.end) == (24, 25)  # at least one frame
    iv = m.move_edge("annotator", 24, "left", -5)
    assert iv.start == 0
    m.select("annotator", 27)
    m.nudge_selection("right", +1)
    assert spans(m)[-1] == (25, 31, "b") and m.selection == Selection("annotator", 25, 31)
    m.clear_selection()
    assert m.nudge_selection("left") is None
    n = len(m._undo)
    assert m.move_edge("annotator", 27, "right", 31).end == 31  # no change: no undo step
    assert len(m._undo) == n
    with pytest.raises(EditError):
        m.nudge("annotator", 50, "left", 1)
    with pytest.raises(EditError):
        m.move_edge("annotator", 27, "middle", 3)
    # a nudge that cannot move says why (the keys showed nothing before), and changes nothing
    m.move_edge("annotator", 12, "right", 25)  # 0-25 now touches 25-31
    n = len(m._undo)
    for at, edge, delta, why in (
        (12, "right", 1, "touches the next interval"),
        (27, "left", -1, "touches the previous interval"),
        (12, "left", -1, "at the first frame"),
    ):
        with pytest.raises(EditError, match=why):
            m.nudge("annotator", at, edge, delta)
    m.set_label("annotator", 40, 41, "c")
    assert m.undo_text == "label frames 40–40"  # frames as the app shows them: the last one included
    with pytest.raises(EditError, match="one frame long"):
        m.nudge("annotator", 40, "left", 1)
    m.set_label("annotator", m.n_frames - 1, m.n_frames, "d")
    with pytest.raises(EditError, match="at the last frame"):
        m.nudge("annotator", m.n_frames - 1, "right", 1)
    assert len(m._undo) == n + 2  # only the two set_label steps


def test_split_merge_delete(m: LabelsModel) -> None:
    m.set_label("annotator", 10, 20, "a")
    m.set_label("annotator", 30, 40, "b")
    left, right = m.split("annotator", 15)
    assert (left.start, left.end, right.start, right.end) == (10, 15, 15, 20)
    with pytest.raises(EditError):
        m.split("annotator", 15)  # first frame of an interval
    merged = m.merge("annotator", 16)
    assert (merged.start, merged.end, merged.label) == (15, 40, "a")  # fills the gap, keeps the first label
    with pytest.raises(EditError):
        m.merge("annotator", 20)  # nothing after it
    m.delete("annotator", 20)
    assert spans(m) == [(10, 15, "a")]


def test_proposal_is_read_only_and_follows_the_threshold(m: LabelsModel) -> None:
    scores = np.zeros(100, np.float32)
    scores[10:20] = 0.9
    scores[40:45] = 0.6
    kinds = []
    m.sig_changed.connect(lambda c: kinds.append(c.kind))
    m.set_proposal(scores, 0.5, {"model": "stan-tiny", "method": "smoothgrad", "model_sha256": "ff"})
    assert spans(m, "model") == [(10, 20, "compensation"), (40, 45, "compensation")]
    assert m.proposal is not None and m.proposal.read_only and m.proposal.meta["threshold"] == 0.5
    with pytest.raises(EditError, match="read-only"):
        m.set_label("model", 0, 5, "x")
    with pytest.raises(EditError, match="reserved"):
        m.add_tier("model")
    m.accept("annotator", 12)
    iv = m.tier("annotator").intervals[0]
    assert (iv.start, iv.end, iv.origin) == (10, 20, "proposal")
    assert iv.proposal is not None and iv.proposal.threshold == 0.5 and iv.proposal.model == "stan-tiny"
    m.set_threshold(0.7)
    assert spans(m, "model") == [(10, 20, "compensation")]
    assert m.proposal.meta["threshold"] == 0.7 and m.proposal.meta["method"] == "smoothgrad"
    assert kinds.count("proposal") == 2
    assert not m.can_redo and m.undo_text.startswith("label")  # the threshold is not an undo step
    with pytest.raises(EditError):
        m.accept("annotator", 42)  # no longer flagged


def test_accept_all_is_one_step(m: LabelsModel) -> None:
    scores = np.zeros(100)
    scores[[5, 6, 7, 50, 51, 80]] = 1
    m.set_proposal(scores, 0.5)
    m.set_label("therapist", 0, 100, "other")
    out = m.accept_all("therapist", "comp")
    assert [(i.start, i.end) for i in out] == [(5, 8), (50, 52), (80, 81)]
    assert spans(m, "therapist")[:3] == [(0, 5, "other"), (5, 8, "comp"), (8, 50, "other")]
    m.undo()
    assert spans(m, "therapist") == [(0, 100, "other")]
    m.accept_all("therapist", replace_existing=True)
    assert spans(m, "therapist") == [(5, 8, "compensation"), (50, 52, "compensation"), (80, 81, "compensation")]


def test_tiers_status_and_serialisation(m: LabelsModel) -> None:
    assert m.status == "unreviewed"
    m.add_tier("rater 2")
    assert m.tier("rater 2").source == "annotator"
    assert m.status == "in_progress"  # the first edit starts the review
    m.set_label("rater 2", 3, 9, "x")
    m.undo()
    m.undo()
    assert not m.has_tier("rater 2")
    m.redo()
    m.redo()
    m.set_status("done")
    assert m.reviewer == "ann"
    with pytest.raises(EditError):
        m.set_status("finished")
    m.set_proposal(np.linspace(0, 1, 100), 0.5, {"model": "x"})
    m2 = LabelsModel.from_dict(m.to_dict())
    assert m2.spans() == m.spans()
    assert m2.tiers == m.tiers  # provenance included
    assert m2.status == "done" and m2.proposal is not None and m2.proposal.meta["model"] == "x"


def test_bad_edits_raise_edit_error(m: LabelsModel) -> None:
    with pytest.raises(EditError, match="no tier"):
        m.set_label("nobody", 0, 3, "x")
    with pytest.raises(EditError, match="empty range"):
        m.set_label("annotator", 100, 120, "x")
    with pytest.raises(EditError, match="label"):
        m.set_label("annotator", 0, 3, " ")
    with pytest.raises(EditError, match="exists"):
        m.add_tier("therapist")
    with pytest.raises(EditError, match="scores"):
        m.set_proposal(np.zeros(99), 0.5)


def test_a_failing_subscriber_does_not_break_edits(m: LabelsModel) -> None:
    def broken(change: Change) -> None:
        raise RuntimeError("view crashed")

    got = []
    m.sig_changed.connect(broken)
    m.sig_changed.connect(got.append)
    m.set_label("annotator", 0, 2, "x")
    assert len(got) == 1
    with m.sig_changed.blocked():
        m.set_label("annotator", 4, 6, "x")
    assert len(got) == 1


def test_agreement_kappa_prf_spans_and_next() -> None:
    m = LabelsModel(40, ("annotator", "therapist"))
    m.set_label("annotator", 5, 15, "x")
    m.set_label("therapist", 8, 15, "x")
    m.set_label("therapist", 20, 25, "y")
    m.set_label("annotator", 22, 30, "z")
    ag = agreement(m, "annotator", "therapist")
    a = m.tier("annotator").mask(40)
    b = m.tier("therapist").mask(40)
    po = np.mean(a == b)
    pe = a.mean() * b.mean() + (1 - a.mean()) * (1 - b.mean())
    assert ag.kappa == pytest.approx((po - pe) / (1 - pe))
    assert (ag.prf.tp, ag.prf.fp, ag.prf.fn) == (10, 2, 8)
    assert ag.prf.precision == pytest.approx(10 / 12) and ag.prf.recall == pytest.approx(10 / 18)
    assert [(s.start, s.end, s.kind) for s in ag.spans] == [
        (5, 8, "a_only"),
        (20, 22, "b_only"),
        (22, 25, "labels"),
        (25, 30, "a_only"),
    ]
    assert ag.kappa_labels < ag.kappa
    assert ag.next_after(5).start == 20
    assert ag.next_after(30) is None and ag.next_after(30, wrap=True).start == 5
    assert ag.previous_before(22).start == 20
    assert next_disagreement(m, "annotator", "therapist", 21).start == 22
    same = agreement(m, "annotator", "annotator")
    assert same.kappa == 1.0 and same.spans == () and same.prf.f1 == 1.0
    only_x = agreement(m, "annotator", "therapist", label="x")
    assert [(s.start, s.end) for s in only_x.spans] == [(5, 8)]
    text = "\n".join(ag.lines(np.arange(40) / 25))
    assert "kappa" in text and "precision" in text and "22-25" in text
    # nothing marked on either tier: no perfect scores, a note instead
    empty = agreement(m, "annotator", "therapist", label="nosuch")
    text = "\n".join(empty.lines())
    assert "n/a: neither tier marks any frame (label 'nosuch')" in text and "F1 1.000" not in text
