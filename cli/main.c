/*
 * cli/main.c - the esfold command: es_cli_main with no aggregate types
 * compiled in (history shows events without state). A program with its own
 * types builds its own binary the same way; see include/esfold/cli.h.
 */
#include "esfold/cli.h"

int main(int argc, char **argv)
{
    return es_cli_main(argc, argv, NULL);
}
