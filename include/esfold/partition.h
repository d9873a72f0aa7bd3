/*
 * esfold/partition.h - which partition a stream lives in.
 *
 * murmur2 of the stream id modulo the partition count, byte for byte the
 * default partitioner of the Java Kafka client (Utils.murmur2 and
 * toPositive), so that Java, Go and ksqlDB producers and consumers place a
 * key where esfold does. Every backend that has partitions uses it.
 */
#ifndef ESFOLD_PARTITION_H
#define ESFOLD_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Kafka's murmur2 (seed 0x9747b28c) of len bytes at key. */
uint32_t es_murmur2(const void *key, size_t len);

/* (murmur2(key) & 0x7fffffff) % partitions; partitions must be > 0. */
int32_t es_partition_for(const char *key, size_t len, int32_t partitions);

#ifdef __cplusplus
}
#endif
#endif
