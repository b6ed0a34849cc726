"""The ops listing's broker flag reads a bounded number of dead letters per chain; when
the bound is reached it cannot tell and says so (None) instead of answering false."""

from __future__ import annotations

from tokenforge.jobs.backends.memory import MemoryQueue
from tokenforge.jobs.handlers.launch import launch_topic
from tokenforge.services.operations import broker_dead_letter_ids


async def dead_letter(queue: MemoryQueue, chain: str, job_ids: list[str]) -> None:
    topic = launch_topic(chain)
    for job_id in job_ids:
        await queue.publish(topic, {"job_id": job_id}, message_id=f"launch-{job_id}")

    async def handler(delivery):
        await delivery.nack(requeue=False)

    sub = await queue.consume(topic, handler, prefetch=10)
    await queue.join(topic, timeout_s=5)
    await sub.stop()


async def test_below_the_bound_the_ids_in_the_broker_are_known():
    queue = MemoryQueue()
    await dead_letter(queue, "solana", ["j1", "j2"])
    await dead_letter(queue, "base", ["j3"])
    assert await broker_dead_letter_ids(queue, {"solana", "base", "empty"}, limit=3) == {"j1", "j2", "j3"}
    await queue.close()


async def test_a_chain_with_the_bound_or_more_dead_letters_makes_the_answer_unknown():
    queue = MemoryQueue()
    await dead_letter(queue, "solana", ["j1", "j2", "j3"])
    assert await broker_dead_letter_ids(queue, {"solana"}, limit=3) is None
    assert len(await queue.dead_letters(launch_topic("solana"))) == 3, "reading left them in place"
    await queue.close()
