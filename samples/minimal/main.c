/*
 * samples/minimal/main.c - the `minimal` program (samples/minimal/counter.c):
 *
 *   minimal --log sqlite:counters.db add c1 5
 *   minimal --log sqlite:counters.db history counter c1
 *   minimal --help
 */
#include "counter.h"

int main(int argc, char **argv)
{
    return es_cli_main(argc, argv, &counter_app);
}
