"""The RabbitMQ queue layout: delays round up to a bucket, arguments follow the delivery limit."""

from __future__ import annotations

import pytest

from tokenforge.jobs.backends.rabbitmq_topology import DELAY_BUCKETS_MS, Topology, bucket_ms


@pytest.mark.parametrize(
    ("delay_ms", "bucket"), [(1, 10), (10, 10), (11, 50), (250, 250), (251, 500), (60_000, 60_000), (61_000, 300_000)]
)
def test_a_delay_is_rounded_up_to_a_bucket_so_it_is_never_shorter(delay_ms, bucket):
    assert bucket_ms(delay_ms) == bucket >= delay_ms


def test_a_delay_beyond_the_largest_bucket_uses_the_largest():
    assert bucket_ms(10 * DELAY_BUCKETS_MS[-1]) == DELAY_BUCKETS_MS[-1]


def test_the_work_queue_dead_letters_after_delivery_limit_deliveries_at_least_once():
    names = Topology("tokenforge.", delivery_limit=5)
    args = names.work_arguments("jobs.launch.solana")
    assert args == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 4,  # returned more than 4 times = handed out 5 times
        "x-dead-letter-exchange": "tokenforge.dead",
        "x-dead-letter-routing-key": "tokenforge.dead.jobs.launch.solana",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def test_a_delay_bucket_expires_back_into_its_topics_work_queue():
    names = Topology("tokenforge.", delivery_limit=5)
    args = names.delay_arguments("jobs.launch.evm", 250)
    assert names.delay("jobs.launch.evm", 250) == "tokenforge.delay.250ms.jobs.launch.evm"
    assert args["x-message-ttl"] == 250
    assert args["x-dead-letter-exchange"] == ""  # the default exchange: routed by queue name
    assert args["x-dead-letter-routing-key"] == "tokenforge.work.jobs.launch.evm"


def test_no_topic_can_name_another_topics_queue():
    names = Topology("tokenforge.", delivery_limit=5)
    queues = [set(names.every_queue(topic)) for topic in ("a", "dead.a", "work.a", "a.dead", "delay.10ms.a")]
    assert sum(len(q) for q in queues) == len(set().union(*queues))
