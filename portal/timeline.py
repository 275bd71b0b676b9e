"""A complaint's progress the way a parcel tracker shows it: the six steps, then each
event in plain Korean. Pure: built from what tracker returned, nothing fetched here."""

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from portal.clients import Complaint, Handler, Step
from portal.texts import Texts
from schemas.states import ComplaintState as S

KST = ZoneInfo("Asia/Seoul")

STEP_INDEX = {
    S.RECEIVED: 0,
    S.ASSIGNED: 1,
    S.HANDLER_ASSIGNED: 2,
    S.SITE_CHECK: 3,
    S.REVIEWING: 4,
    S.RESOLVED: 5,
    S.CLOSED: 5,
}
ENDED = {S.REJECTED, S.WITHDRAWN}
WITHDRAWABLE = {S.RECEIVED, S.ASSIGNED, S.HANDLER_ASSIGNED, S.SITE_CHECK, S.REVIEWING}
WITHDRAWABLE |= {S.INFO_REQUESTED}
REOPENABLE = {S.RESOLVED, S.CLOSED}
CORRECTABLE = {S.RECEIVED, S.ASSIGNED, S.HANDLER_ASSIGNED}
"""As routing's lifecycle allows 정정 (``routing/lifecycle.py``); later the page offers to
tell the handler instead."""
TELL_THE_HANDLER = {S.SITE_CHECK, S.REVIEWING}
RATEABLE = REOPENABLE


def kst(moment: datetime | None) -> str:
    """12월 2일 08:43 (Korean time)."""
    if moment is None:
        return ""
    local = moment.astimezone(KST)
    return f"{local.month}월 {local.day}일 {local:%H:%M}"


@dataclass(frozen=True)
class StepView:
    label: str
    status: str  # "done", "current", "todo", "skipped"
    at: str
    department: str | None
    handler: Handler | None


@dataclass(frozen=True)
class EventView:
    sequence: int
    at: str
    text: str
    note_label: str | None
    note: str | None
    remedy_label: str | None
    remedy: str | None
    department: str | None
    handler: Handler | None


@dataclass(frozen=True)
class TimelineView:
    state: str
    state_text: str
    steps: list[StepView]
    events: list[EventView]
    department: str | None
    handler: Handler | None
    due: str
    overdue: bool
    info_request: str | None
    ended: bool
    result: str | None
    can_withdraw: bool
    can_reopen: bool
    refusals: list[str]
    last_sequence: int
    can_correct: bool = False
    tell_the_handler: bool = False
    """Too late to correct (the site check started): the handler is the one to tell."""
    can_rate: bool = False
    rating: int | None = None
    """This resolution's rating, once given."""
    dong: str | None = None
    title: str | None = None
    photo_ids: tuple[str, ...] = ()
    """Photos attached now (at filing and by corrections), shown to the resident; a
    correction adds up to the per-complaint limit."""


def _state(value: str | None) -> S | None:
    try:
        return S(value) if value else None
    except ValueError:
        return None


KEEPS_THE_STEP = {"rate"}
"""Internal changes that are not a step reached again (a rating leaves the result as it was)."""


def _last_reached(timeline: list[Step], state: S) -> Step | None:
    return next(
        (s for s in reversed(timeline) if s.state == state and s.trigger not in KEEPS_THE_STEP),
        None,
    )


def event_text(step: Step, texts: Texts) -> EventView:
    template = texts.events.get(step.trigger)
    if template is None:
        template = texts.events["other"] if step.sequence > 1 else texts.steps[0].done
    department = step.department_name or step.department or ""
    handler = step.handler.name if step.handler else ""
    label = texts.note_labels.get(step.trigger, texts.note_labels["other"])
    note = step.note
    if step.correction is not None:
        correction = step.correction
        detail = {"dong": correction.dong, "photos": f"{len(correction.photos)}장"}
        if not correction.photos:
            detail.pop("photos")
        names = [
            f"{name}({detail[field]})" if detail.get(field) else name
            for field in correction.fields
            for name in [texts.field_names.get(field, field)]
        ]
        note = ", ".join(names)
    elif step.rating is not None:
        note = f"{step.rating.score}점" + (
            f" · {step.rating.comment}" if step.rating.comment else ""
        )
    return EventView(
        sequence=step.sequence,
        at=kst(step.occurred_at),
        text=template.format(department=department, handler=handler),
        note_label=label if note else None,
        note=note,
        remedy_label=texts.remedy_label if step.remedy else None,
        remedy=step.remedy,
        department=step.department_name,
        handler=step.handler,
    )


def build(complaint: Complaint, texts: Texts) -> TimelineView:
    state = _state(complaint.state) or S.RECEIVED
    timeline = sorted(complaint.timeline, key=lambda s: s.sequence)
    working = state
    info_request = None
    if state == S.INFO_REQUESTED:
        asked = _last_reached(timeline, S.INFO_REQUESTED)
        working = _state(asked.from_state if asked else None) or S.HANDLER_ASSIGNED
        info_request = asked.note if asked else None
    if state in ENDED:
        before = next((s for s in reversed(timeline) if _state(s.state) in STEP_INDEX), None)
        working = _state(before.state if before else None) or S.RECEIVED
    current = STEP_INDEX.get(working, 0)
    department_name = complaint.department.name if complaint.department else None
    steps = []
    for index, text in enumerate(texts.steps):
        reached = _last_reached(timeline, text.state)
        if index < current or (index == current and working in (S.RESOLVED, S.CLOSED)):
            status = "done" if reached else "skipped"
        elif index == current and state not in ENDED:
            status = "current"
        else:
            status = "todo"
        label = text.label
        if "{department}" in label:
            name = (reached.department_name if reached else None) or department_name
            label = label.format(department=name) if name else (text.label_unknown or label)
        steps.append(
            StepView(
                label=label,
                status=status,
                at=kst(reached.occurred_at) if reached and status != "todo" else "",
                department=reached.department_name if reached else None,
                handler=reached.handler if reached else None,
            )
        )
    resolved = _last_reached(timeline, S.RESOLVED)
    rated = next((s for s in reversed(timeline) if s.trigger == "rate"), None)
    rated_now = rated is not None and resolved is not None and rated.sequence > resolved.sequence
    return TimelineView(
        state=state.value,
        state_text=texts.state(state.value),
        steps=steps,
        events=[event_text(step, texts) for step in reversed(timeline)],
        department=department_name,
        handler=complaint.handler,
        due=kst(complaint.due_at),
        overdue=complaint.overdue,
        info_request=info_request,
        ended=state in ENDED,
        result=resolved.note if resolved and state in REOPENABLE else None,
        can_withdraw=state in WITHDRAWABLE,
        can_reopen=state in REOPENABLE,
        refusals=[r.reason_ko for r in complaint.rejections],
        last_sequence=timeline[-1].sequence if timeline else 0,
        can_correct=state in CORRECTABLE,
        tell_the_handler=state in TELL_THE_HANDLER,
        can_rate=state in RATEABLE and not rated_now,
        rating=rated.rating.score if rated_now and rated and rated.rating else None,
        dong=complaint.dong,
        title=complaint.title,
        photo_ids=tuple(p.photo_id for p in complaint.photos),
    )
