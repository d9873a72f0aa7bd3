/*
 * tests/test_partition.c - core/partition.c: Kafka's murmur2 and the
 * partition a key lands in, byte for byte as the Java client and librdkafka
 * place it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "harness.h"

/*
 * The vectors of Apache Kafka's own test, UtilsTest.testMurmur2
 * (apache/kafka clients/src/test/java/org/apache/kafka/common/utils/
 * UtilsTest.java): Utils.murmur2 returns a Java int, hence the signed values.
 */
static void test_java_vectors(void **state)
{
    static const struct {
        const char *key;
        int32_t hash;
    } cases[] = {
        {"21", -973932308},
        {"foobar", -790332482},
        {"a-little-bit-long-string", -985981536},
        {"a-little-bit-longer-string", -1486304829},
        {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
    };
    static const unsigned char abc[] = {'a', 'b', 'c'}; /* new byte[] {'a','b','c'} */
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint32_t h = es_murmur2(cases[i].key, strlen(cases[i].key));
        if ((int32_t)h != cases[i].hash)
            print_error("murmur2(\"%s\") = %d, Java says %d\n", cases[i].key,
                        (int)(int32_t)h, (int)cases[i].hash);
        assert_int_equal((int32_t)h, cases[i].hash);
    }
    assert_int_equal((int32_t)es_murmur2(abc, sizeof abc), 479470107);
}

/*
 * librdkafka's vectors (confluentinc/librdkafka src/rdmurmur2.c,
 * unittest_murmur2, "java_murmur2_results"): together with the Java ones
 * they cover every length mod 4 and the empty key.
 */
static void test_every_tail_length(void **state)
{
    static const struct {
        const char *key;
        uint32_t hash;
    } cases[] = {
        {"kafka", 0xd067cf64u},             /* 5: tail 1 */
        {"giberish123456789", 0x8f552b0cu}, /* 17: tail 1 */
        {"1234", 0x9fc97b14u},              /* 4: tail 0 */
        {"234", 0xe7c009cau},               /* 3: tail 3 */
        {"34", 0x873930dau},                /* 2: tail 2 */
        {"4", 0x5a4b5ca1u},                 /* 1: tail 1 */
        {"PreAmbleWillBeRemoved,ThePrePartThatIs", 0x78424f1cu},
        {"reAmbleWillBeRemoved,ThePrePartThatIs", 0x4a62b377u},
        {"eAmbleWillBeRemoved,ThePrePartThatIs", 0xe0e4e09eu},
        {"AmbleWillBeRemoved,ThePrePartThatIs", 0x62b8b43fu},
        {"", 0x106e08d9u},                  /* 0 */
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        assert_int_equal(es_murmur2(cases[i].key, strlen(cases[i].key)),
                         cases[i].hash);
    /* NULL with length 0 is the empty key, as in librdkafka */
    assert_int_equal(es_murmur2(NULL, 0), 0x106e08d9u);
}

/* The hash reads only len bytes, whatever follows them. */
static void test_reads_only_len_bytes(void **state)
{
    unsigned char buf[64];
    (void)state;
    for (size_t len = 0; len < 40; len++) {
        uint32_t h;
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (unsigned char)(i * 37 + 11);
        h = es_murmur2(buf, len);
        memset(buf + len, 0xff, sizeof buf - len);
        assert_int_equal(es_murmur2(buf, len), h);
        /* and every byte counts: flipping the last one changes the hash */
        if (len > 0) {
            buf[len - 1] ^= 0x80;
            assert_true(es_murmur2(buf, len) != h);
        }
    }
}

/* partition = toPositive(murmur2) % n, as the Java DefaultPartitioner. */
static void test_partition_for(void **state)
{
    static const char *keys[] = {"21", "foobar", "abc", "kafka", "", "acct-42",
                                 "a-little-bit-longer-string"};
    (void)state;
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        size_t len = strlen(keys[i]);
        uint32_t h = es_murmur2(keys[i], len);
        for (int32_t n = 1; n <= 300; n++) {
            int32_t p = es_partition_for(keys[i], len, n);
            assert_true(p >= 0 && p < n);
            assert_int_equal(p, (int32_t)((h & 0x7fffffffu) % (uint32_t)n));
        }
    }
    /* hand-checked: "foobar" -> -790332482 = 0xd0e3c0be; & 0x7fffffff =
     * 1357151166; % 50 = 16 (a value other ports pin as well) */
    assert_int_equal(es_partition_for("foobar", 6, 50), 16);
    /* "kafka" -> 0xd067cf64; toPositive 0x5067cf64 = 1348980580 */
    assert_int_equal(es_partition_for("kafka", 5, 10), 0);
    assert_int_equal(es_partition_for("kafka", 5, 7), 1348980580 % 7);
    /* a hash with the sign bit set must not turn into a negative partition
     * (Java's Math.abs bug that toPositive avoids) */
    assert_true((es_murmur2("21", 2) & 0x80000000u) != 0);
    assert_int_equal(es_partition_for("21", 2, 1000),
                     (int32_t)((uint32_t)(-973932308 & 0x7fffffff) % 1000));
    /* a count of 0 or less does not divide by zero */
    assert_int_equal(es_partition_for("x", 1, 0), 0);
    assert_int_equal(es_partition_for("x", 1, -3), 0);
    /* the length is what counts, not a NUL */
    assert_int_equal(es_partition_for("ab\0cd", 5, 97),
                     (int32_t)((es_murmur2("ab\0cd", 5) & 0x7fffffffu) % 97));
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rng(void)
{
    /* xorshift64*: reproducible across runs */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1du;
}

/*
 * esfold places keys exactly where librdkafka's murmur2 partitioner
 * (partitioner=murmur2, the Java-compatible one) does. Its implementation
 * (src/rdkafka_msg.c) is (rd_murmur2(key, keylen) & 0x7fffffff) %
 * partition_cnt and does not look at the topic, so rkt may be NULL.
 */
static void test_agrees_with_librdkafka(void **state)
{
    unsigned char key[300];
    static const int32_t counts[] = {1, 2, 3, 4, 6, 7, 12, 16, 31, 64, 100, 1000,
                                     65537, 2147483647};
    (void)state;
    for (int i = 0; i < 200000; i++) {
        size_t len = (size_t)(rng() % (i < 1000 ? 9 : sizeof key));
        int32_t n = counts[rng() % (sizeof counts / sizeof *counts)];
        int32_t ours, theirs;
        for (size_t j = 0; j < len; j++)
            key[j] = (unsigned char)rng(); /* all byte values, 0x80.. too */
        if (i % 3 == 0) /* stream-id-like printable keys */
            for (size_t j = 0; j < len; j++)
                key[j] = (unsigned char)(' ' + key[j] % 95);
        ours = es_partition_for((const char *)key, len, n);
        theirs = rd_kafka_msg_partitioner_murmur2(NULL, key, len, n, NULL, NULL);
        if (ours != theirs)
            print_error("key of %zu bytes, %d partitions: esfold %d, librdkafka %d\n",
                        len, (int)n, (int)ours, (int)theirs);
        assert_int_equal(ours, theirs);
        /* the full hash too: with 2^31-1 partitions the partition is the
         * positive hash itself (unless it is exactly 2^31-1) */
        if (n == 2147483647 && (es_murmur2(key, len) & 0x7fffffffu) != 0x7fffffffu)
            assert_int_equal((uint32_t)ours, es_murmur2(key, len) & 0x7fffffffu);
    }
    /* and through a real topic handle of a producer with no brokers, the
     * way librdkafka calls its partitioners */
    {
        char errstr[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *rk;
        rd_kafka_topic_t *rkt;
        assert_int_equal(rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof errstr),
                         RD_KAFKA_CONF_OK);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
        assert_non_null(rk);
        rkt = rd_kafka_topic_new(rk, "esfold-test", NULL);
        assert_non_null(rkt);
        for (int i = 0; i < 2000; i++) {
            char id[32];
            int len = snprintf(id, sizeof id, "acct-%d", i);
            for (int32_t n = 1; n <= 24; n++)
                assert_int_equal(es_partition_for(id, (size_t)len, n),
                                 rd_kafka_msg_partitioner_murmur2(rkt, id, (size_t)len,
                                                                  n, NULL, NULL));
        }
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_java_vectors),
        cmocka_unit_test(test_every_tail_length),
        cmocka_unit_test(test_reads_only_len_bytes),
        cmocka_unit_test(test_partition_for),
        cmocka_unit_test(test_agrees_with_librdkafka),
    };
    return cmocka_run_group_tests_name("partition", tests, NULL, NULL);
}
