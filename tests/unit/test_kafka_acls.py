"""The Kafka ACLs ``sotong kafka-acls`` prints, derived from the contract: only intake may
write commands and filings, departments only read what carries no resident contact."""

from schemas import topics
from sotong.acls import Acl, acls, commands, default_principals

SUBSCRIPTIONS = [
    ("intake", topics.SUBMISSIONS, "sotong-intake"),
    ("routing", topics.FILED, "sotong-routing-filed"),
    ("routing", topics.COMMANDS, "sotong-routing-commands"),
    ("tracker", topics.LIFECYCLE, "sotong-tracker"),
]
P = default_principals()


def writers(found: list[Acl], topic: str) -> set[str]:
    return {a.principal for a in found if a.operation == "Write" and a.name == topic}


def test_only_intake_writes_commands_and_filings() -> None:
    found = acls(P, iter(SUBSCRIPTIONS))
    assert writers(found, topics.COMMANDS) == {"User:sotong-intake"}
    assert writers(found, topics.FILED) == {"User:sotong-intake"}
    assert writers(found, topics.SUBMISSIONS) == {"User:sotong-channels"}
    assert writers(found, topics.LIFECYCLE) == {"User:sotong-routing"}


def test_departments_read_only_what_has_no_resident_contact() -> None:
    found = acls(P, iter(SUBSCRIPTIONS))
    theirs = {(a.operation, a.name) for a in found if a.principal == P[topics.DEPARTMENTS]}
    assert theirs == {
        ("Read", topics.LIFECYCLE),
        ("Read", topics.REJECTIONS),
        ("Read", "department-"),
    }


def test_every_subscriber_reads_its_topic_under_its_own_group() -> None:
    found = acls(P, iter(SUBSCRIPTIONS))
    for service, topic, group in SUBSCRIPTIONS:
        assert Acl(P[service], "Read", "topic", topic) in found
        assert Acl(P[service], "Read", "group", group) in found


def test_commands_name_the_prefixed_topic_but_not_the_group() -> None:
    found = [
        Acl("User:a", "Read", "topic", topics.FILED),
        Acl("User:a", "Read", "group", "g", pattern="prefixed"),
    ]
    topic_line, group_line = commands(found, "k:9093", topic_prefix="prod.")
    assert topic_line.endswith("--topic prod.complaint.filed")
    assert group_line.endswith("--group g --resource-pattern-type prefixed")
