/*
 * core/partition.c - Kafka's murmur2 partitioner, as the Java client has it
 * (org.apache.kafka.common.utils.Utils.murmur2 and toPositive).
 */
#include "esfold/partition.h"

uint32_t es_murmur2(const void *key, size_t len)
{
    const unsigned char *data = key;
    const uint32_t m = 0x5bd1e995u;
    const int r = 24;
    uint32_t h = 0x9747b28cu ^ (uint32_t)len;
    size_t i, len4 = len / 4;

    for (i = 0; i < len4; i++) {
        const unsigned char *b = data + i * 4;
        uint32_t k = (uint32_t)b[0] | (uint32_t)b[1] << 8 |
                     (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    /* The Java code falls through from 3 to 1, as here. */
    switch (len % 4) {
    case 3:
        h ^= (uint32_t)data[(len & ~(size_t)3) + 2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)data[(len & ~(size_t)3) + 1] << 8;
        /* fall through */
    case 1:
        h ^= (uint32_t)data[len & ~(size_t)3];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

int32_t es_partition_for(const char *key, size_t len, int32_t partitions)
{
    if (partitions <= 0)
        return 0;
    return (int32_t)((es_murmur2(key, len) & 0x7fffffffu) % (uint32_t)partitions);
}
