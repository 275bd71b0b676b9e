"""The lifecycle states a complaint can be in (the machine in routing decides the moves)."""

from enum import StrEnum


class ComplaintState(StrEnum):
    RECEIVED = "received"  # 접수
    ASSIGNED = "assigned"  # ○○과 배정
    HANDLER_ASSIGNED = "handler_assigned"  # 담당자 지정
    SITE_CHECK = "site_check"  # 현장 확인 중
    REVIEWING = "reviewing"  # 심사 중
    INFO_REQUESTED = "info_requested"  # 보완 요청
    RESOLVED = "resolved"  # 처리 완료
    REJECTED = "rejected"  # 반려
    WITHDRAWN = "withdrawn"  # 취하
    CLOSED = "closed"  # 종결


OPEN_STATES = frozenset(
    {
        ComplaintState.RECEIVED,
        ComplaintState.ASSIGNED,
        ComplaintState.HANDLER_ASSIGNED,
        ComplaintState.SITE_CHECK,
        ComplaintState.REVIEWING,
        ComplaintState.INFO_REQUESTED,
    }
)

CONCLUDED_STATES = frozenset({ComplaintState.RESOLVED, ComplaintState.CLOSED})
"""A complaint answered: a later one of the same resident may repeat it (반복민원)."""
