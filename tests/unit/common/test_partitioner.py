"""The producers' partitioner: the partition Kafka's default partitioner picks for the same key."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference_murmur2

from services.common.broker import kafka_partition, murmur2

# From Kafka's own tests: Utils.murmur2 (a signed Java int) of these keys, and the partition out of 1,000 that
# the Java client's default partitioner picks (kafka-python checks the same values).
JAVA_MURMUR2 = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]
JAVA_PARTITION_OF_1000 = [(b"", 681), (b"a", 524), (b"ab", 434), (b"abc", 107), (b"123456789", 566)]


@pytest.mark.parametrize(("key", "signed"), JAVA_MURMUR2)
def test_murmur2_is_the_java_clients_hash(key: bytes, signed: int) -> None:
    assert murmur2(key) == signed % 2**32


@pytest.mark.parametrize(("key", "partition"), JAVA_PARTITION_OF_1000)
def test_a_key_goes_to_the_partition_the_java_client_picks(key: bytes, partition: int) -> None:
    assert kafka_partition(key, list(range(1000)), list(range(1000))) == partition


def test_every_key_length_hashes_as_aiokafkas_reference_implementation() -> None:
    rng = random.Random(20261130)
    keys = [rng.randbytes(n) for n in range(0, 70) for _ in range(20)]
    keys += [f"generic:D-{n}".encode() for n in range(2000)]
    assert [murmur2(k) for k in keys] == [reference_murmur2(k) for k in keys]


def test_partitions_agree_with_aiokafkas_default_partitioner_for_any_partition_count() -> None:
    reference = DefaultPartitioner()
    for count in (1, 2, 3, 7, 12):
        partitions = list(range(count))
        for n in range(500):
            key = f"hubspot:{n * 7919}".encode()
            assert kafka_partition(key, partitions, partitions) == reference(key, partitions, partitions)


def test_a_record_without_a_key_goes_to_an_available_partition() -> None:
    assert all(kafka_partition(None, [0, 1, 2], [2]) == 2 for _ in range(20))
    assert kafka_partition(None, [0, 1, 2], []) in (0, 1, 2)
