"""Topic names. Every message about a complaint is keyed by its complaint id."""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

SUBMISSIONS: Final = "complaint.submissions"
"""Channels (KakaoTalk, chatbot, call centre, Open311 bridges) publish ComplaintSubmitted."""

FILED: Final = "complaint.filed"
"""intake publishes ComplaintFiled once per accepted complaint."""

COMMANDS: Final = "complaint.commands"
"""Department systems (and intake's HTTP API) publish ComplaintCommand."""

LIFECYCLE: Final = "complaint.lifecycle"
"""routing publishes one ComplaintStatusChanged per state transition."""

SLA: Final = "complaint.sla"
"""routing publishes ComplaintDeadlineAlert when a deadline threshold is crossed."""

REJECTIONS: Final = "complaint.rejections"
"""routing publishes CommandRejected for every command it refuses, with the reason."""

NOTIFICATIONS: Final = "notification.outcomes"
"""notifier publishes one NotificationOutcome per delivery attempt outcome."""

RETRY: Final = "notification.retry"
"""notifier publishes NotificationRetryScheduled for a delivery to try again later, and
consumes it itself (a retry topic, as Uber published it): a long retry never holds the
consumer past its poll limit."""

CONTACT_CODES: Final = "contact.codes"
"""intake publishes ContactCodeIssued (the phone and the code) and ContactConfirmed for an
anonymous filing's phone; only the notifier reads it. Personal data: never tracked."""

RESIDENT_BINDINGS: Final = "resident.bindings"
"""intake publishes ResidentBound when a resident proves, with a code sent to the phone on
file, that a complaint is theirs on another device (issue 12): the tracker then lists it
under that device's resident token too. A token hash, no contact: internal, intake to
tracker only (department systems never read it)."""

DEAD_LETTER: Final = "sotong.deadletter"
"""Anything no consumer could process, with the reason and the original bytes."""

ALL: Final = (
    SUBMISSIONS,
    FILED,
    COMMANDS,
    LIFECYCLE,
    SLA,
    REJECTIONS,
    NOTIFICATIONS,
    RETRY,
    CONTACT_CODES,
    RESIDENT_BINDINGS,
    DEAD_LETTER,
)

OF_EVENT: Final[Mapping[str, str]] = MappingProxyType(
    {
        "complaint.submitted": SUBMISSIONS,
        "complaint.filed": FILED,
        "complaint.command": COMMANDS,
        "complaint.status_changed": LIFECYCLE,
        "complaint.deadline_alert": SLA,
        "complaint.command_rejected": REJECTIONS,
        "notification.outcome": NOTIFICATIONS,
        "notification.retry_scheduled": RETRY,
        "contact.code_issued": CONTACT_CODES,
        "contact.confirmed": CONTACT_CODES,
        "resident.bound": RESIDENT_BINDINGS,
        "sotong.dead_lettered": DEAD_LETTER,
    }
)
"""Where each event type is published: every event has exactly one topic."""

TRACKED: Final = (FILED, LIFECYCLE, REJECTIONS, NOTIFICATIONS, SLA, COMMANDS, RESIDENT_BINDINGS)
"""What the tracker stores: everything about a complaint but raw submissions, and of the
commands only the resident's corrections (``correct``: the corrected address and title
travel only there, since the lifecycle topic is shared with departments), and the devices
a resident bound to their complaints."""

TRACKED_COMMANDS: Final = frozenset({"correct"})
"""The command actions tracker keeps; it passes over the others, which routing reports."""

PERSONAL: Final = (SUBMISSIONS, FILED, CONTACT_CODES)
"""Topics that carry a resident's contact: internal, read by Sotong's services only (never
by department systems, never stored by the tracker but as its read model needs)."""

CHANNELS: Final = "channels"
"""Outside Sotong: KakaoTalk, chatbot, call-centre and Open311 bridges without HTTP."""

DEPARTMENTS: Final = "departments"
"""Outside Sotong: the department systems."""

PUBLISHERS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        SUBMISSIONS: (CHANNELS,),
        FILED: ("intake",),
        COMMANDS: ("intake",),  # signed; department systems command through intake's API
        LIFECYCLE: ("routing",),
        SLA: ("routing",),
        REJECTIONS: ("routing",),
        NOTIFICATIONS: ("notifier",),
        RETRY: ("notifier",),
        CONTACT_CODES: ("intake",),
        RESIDENT_BINDINGS: ("intake",),
        DEAD_LETTER: ("intake", "routing", "tracker", "notifier"),
    }
)
"""Who publishes on each topic: a Sotong service by name, or a party outside Sotong. Every
service that subscribes dead-letters what it cannot process. A test holds this table to
the services' code; the AsyncAPI document (``docs/asyncapi.yaml``) is generated from it."""
