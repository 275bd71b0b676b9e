"""Topic names. Every message about a complaint is keyed by its complaint id."""

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

DEAD_LETTER: Final = "sotong.deadletter"
"""Anything no consumer could process, with the reason and the original bytes."""

ALL: Final = (SUBMISSIONS, FILED, COMMANDS, LIFECYCLE, SLA, REJECTIONS, NOTIFICATIONS, DEAD_LETTER)
