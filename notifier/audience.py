"""Who is told what, over which channels: pure, from one event and what is configured.

- **The resident**, for every step of their complaint, within their consent: the
  general desk's message when the classifier was not confident and sent the complaint
  there (``auto_routed`` false), the trigger's message when the move says more than its
  state (이송, 연장, 담당자 변경…), else the state's. Results (by default received,
  resolved and rejected — see ``SOTONG_NOTIFIER_URGENT_STATES``) go out at once; other
  steps wait out quiet hours.
  The 30-day progress notice is the resident's too.
  Marks routing makes for the department to decide (반복민원 ``mark_repeated``, and
  ``dismiss_repeated``, ``unlink``) are not told; their decision is: ``conclude_repeated``
  names the earlier complaint, its answer, the law and the remedy, and ``link`` tells the
  resident their complaint is worked with an earlier one at the same place.
- **The handler**, when a complaint becomes theirs or changes under them (assigned,
  reassigned, reopened, supplemented, withdrawn, corrected: the triggers the catalogue's
  ``staff`` part names), at their work mobile (SMS), then work e-mail, from the staff
  directory (:mod:`notifier.staff`); never at the office landline, which no provider reaches.
- **The supervisor** (and the handler, unless they are the same person) on a deadline
  warning and breach.
- **Department systems** subscribed by webhook, for every event of their department
  (from assignment on: ``received`` belongs to no department yet), never held back by
  quiet hours.
- **The Open311 app that filed the complaint**, if it registered a webhook: every step
  the resident is told of, as a public-safe GeoReport update (no resident data), at once.

A person's channels are derived from their contact until the contract carries a
preferred channel: a phone means AlimTalk, falling back to SMS/LMS, then e-mail if they
also left an address; only an address means e-mail. Channels not configured are left
out; when none is left, the local outbox (on one machine) takes the message. A person
with neither a phone nor an address has no channel at all, not even the outbox: the
delivery is skipped with that reason instead of "sent" to nobody.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from notifier.channel import (
    DEPARTMENT_PREFIX,
    HANDLER,
    OPEN311_PREFIX,
    RESIDENT,
    SUPERVISOR,
    Message,
)
from notifier.recipients import Recipient
from notifier.staff import StaffDirectory
from notifier.templates import Catalogue, Content, Letterhead, TemplateError
from notifier.webhook import cloudevent, open311_update
from schemas import ComplaintDeadlineAlert, ComplaintState, ComplaintStatusChanged
from schemas.events import AlertKind, HandlerRef
from schemas.pii import mask_fields

Source = ComplaintStatusChanged | ComplaintDeadlineAlert

ALIMTALK, SMS, EMAIL, OUTBOX, WEBHOOK = "alimtalk", "sms", "email", "outbox", "webhook"
PERSON_CHANNELS = (ALIMTALK, SMS, EMAIL)
UNTOLD_TRIGGERS = frozenset({"mark_repeated", "dismiss_repeated", "unlink", "rate"})
"""Marks the department decides on: the resident hears of the decision, not the mark
(a confirmed 반복민원 is told as ``conclude_repeated``). A rating is the resident's own
act, confirmed on the page: a message about it would tell them nothing (the department
hears of it by webhook)."""
DEFAULT_URGENT_STATES = frozenset(
    {ComplaintState.RECEIVED, ComplaintState.RESOLVED, ComplaintState.REJECTED}
)


@dataclass(frozen=True)
class Notice:
    """One recipient to tell about one event, and the channels to try in order."""

    recipient: str
    chain: tuple[str, ...]
    urgent: bool
    content: Content | None = None
    cloudevent: Mapping[str, Any] | None = None
    department: str | None = None
    webhook: str | None = None
    consent: bool = True
    phone: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)

    @property
    def template(self) -> str:
        """What the ledger and the outcome name as the message sent."""
        if self.content is not None:
            return self.content.template.template_code
        return "cloudevent"

    def message(self, delivery_id: str, event: Source) -> Message:
        """What one channel is handed for this notice: the same words on every channel of
        the chain, so a fallback says exactly what the failed channel would have."""
        return Message(
            delivery_id=delivery_id,
            complaint_id=event.complaint_id,
            receipt_number=event.receipt_number,
            recipient=self.recipient,
            state=event.to_state if isinstance(event, ComplaintStatusChanged) else event.state,
            content=self.content,
            cloudevent=self.cloudevent,
            department=self.department,
            phone=self.phone,
            email=self.email,
            webhook=self.webhook,
        )


@dataclass(frozen=True)
class Audience:
    catalogue: Catalogue
    channels: frozenset[str]
    """Configured channels for people: any of alimtalk, sms, email, outbox."""
    letterhead: Letterhead
    """Who the messages are from, and the link a resident follows the complaint by."""
    webhooks: frozenset[str] = frozenset()
    """Departments with a webhook subscription."""
    apps: frozenset[str] = frozenset()
    """Open311 client apps with a webhook subscription."""
    photo_base: str | None = None
    """intake's public address: department webhooks list the complaint's photos under it
    (``{photo_base}/v1/photos/{id}``); without it they list none."""
    urgent_states: frozenset[ComplaintState] = DEFAULT_URGENT_STATES
    source: str = "/sotong/routing"
    staff: StaffDirectory = field(default_factory=StaffDirectory)
    """Handlers' and supervisors' work mobiles and e-mails, by handler id."""

    def __post_init__(self) -> None:
        """A sender name too long for an LMS title fails at start-up, not per message."""
        try:
            self.catalogue.subject_for({"sender_name": self.letterhead.sender_name})
        except TemplateError as exc:
            raise ValueError(f"the sender name does not fit: {exc}") from None

    def photo_links(self, resident: Recipient | None, event: Source | None = None) -> list[str]:
        """The complaint's photos: the filing's and those corrections added, the event's
        own (a correction's 사진 추가) included however late its recipient heard of them."""
        if not self.photo_base:
            return []
        ids = list(resident.photos) if resident is not None else []
        if isinstance(event, ComplaintStatusChanged) and event.correction is not None:
            ids += [p.photo_id for p in event.correction.photos]
        base = self.photo_base.rstrip("/")
        return [f"{base}/v1/photos/{photo_id}" for photo_id in dict.fromkeys(ids)]

    def chain(self, phone: str | None, email: str | None) -> tuple[str, ...]:
        if not phone and not email:
            return ()
        reachable = [
            name
            for name, contact in ((ALIMTALK, phone), (SMS, phone), (EMAIL, email))
            if contact and name in self.channels
        ]
        if not reachable and OUTBOX in self.channels:
            return (OUTBOX,)
        return tuple(reachable)

    def plan(
        self, event: Source, resident: Recipient | None, correlation_id: str | None = None
    ) -> list[Notice]:
        """Everyone to tell about ``event``, the resident first."""
        if isinstance(event, ComplaintStatusChanged):
            notices = self._for_change(event, resident)
        else:
            notices = self._for_alert(event, resident)
        if event.department and event.department in self.webhooks:
            notices.append(
                Notice(
                    recipient=DEPARTMENT_PREFIX + event.department,
                    chain=(WEBHOOK,),
                    urgent=True,
                    cloudevent=cloudevent(
                        event,
                        source=self.source,
                        correlation_id=correlation_id,
                        photos=self.photo_links(resident, event),
                    ),
                    department=event.department,
                )
            )
        app = resident.channel_client if resident is not None else None
        if (
            app in self.apps
            and isinstance(event, ComplaintStatusChanged)
            and event.trigger not in UNTOLD_TRIGGERS
        ):
            notices.append(
                Notice(
                    recipient=OPEN311_PREFIX + str(app),
                    chain=(WEBHOOK,),
                    urgent=True,
                    cloudevent=open311_update(
                        event, source=self.source, correlation_id=correlation_id
                    ),
                    webhook=OPEN311_PREFIX + str(app),
                )
            )
        return notices

    def _for_change(
        self, event: ComplaintStatusChanged, resident: Recipient | None
    ) -> list[Notice]:
        values = self.catalogue.values(event, self.letterhead)
        notices = []
        if resident is not None and event.trigger not in UNTOLD_TRIGGERS:
            content = self.catalogue.resident_content(
                event.to_state, event.trigger, values, general_desk=event.auto_routed is False
            )
            notices.append(
                self._resident(resident, content, urgent=event.to_state in self.urgent_states)
            )
        staff = self.catalogue.staff_content(event.trigger, mask_fields(values, "note", "remedy"))
        if staff is not None and event.handler is not None:
            notices.append(self._staff(HANDLER, event.handler, staff))
        return notices

    def _for_alert(self, alert: ComplaintDeadlineAlert, resident: Recipient | None) -> list[Notice]:
        content = self.catalogue.alert_content(
            alert.kind, self.catalogue.values(alert, self.letterhead)
        )
        if alert.kind is AlertKind.PROGRESS_NOTICE:
            return [] if resident is None else [self._resident(resident, content, urgent=False)]
        notices = []
        if alert.supervisor is not None:
            notices.append(self._staff(SUPERVISOR, alert.supervisor, content))
        if alert.handler is not None and (
            alert.supervisor is None or alert.handler.handler_id != alert.supervisor.handler_id
        ):
            notices.append(self._staff(HANDLER, alert.handler, content))
        return notices

    def _resident(self, resident: Recipient, content: Content, *, urgent: bool) -> Notice:
        return Notice(
            recipient=RESIDENT,
            chain=self.chain(resident.phone, resident.email),
            urgent=urgent,
            content=content,
            consent=resident.notification_consent,
            phone=resident.phone,
            email=resident.email,
        )

    def staff_chain(self, mobile: str | None, email: str | None) -> tuple[str, ...]:
        """SMS to the work mobile, then e-mail; the outbox when neither is configured."""
        if not mobile and not email:
            return ()
        reachable = [
            name
            for name, contact in ((SMS, mobile), (EMAIL, email))
            if contact and name in self.channels
        ]
        if not reachable and OUTBOX in self.channels:
            return (OUTBOX,)
        return tuple(reachable)

    def _staff(self, role: str, person: HandlerRef, content: Content) -> Notice:
        """Staff are told at their work contacts from the directory (not in the directory:
        skipped, never sent to a landline); notices are part of the job, so no consent."""
        contact = self.staff.get(person.handler_id)
        mobile = contact.mobile if contact is not None else None
        email = contact.email if contact is not None else None
        return Notice(
            recipient=role,
            chain=self.staff_chain(mobile, email),
            urgent=False,
            content=content,
            phone=mobile,
            email=email,
        )
