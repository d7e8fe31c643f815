/* tlsshim.conf(5) documents every key the parser accepts, and only those:
 * each key of the parser's own table (ts_policy_key) has an entry
 * ("*key* = ..." at the start of a line) in the right section (GLOBAL
 * KEYS, or RULES / SERVER RULES), with its default and an example; every entry names a
 * key of that table and scope. A key added to the parser without its
 * entry fails here.
 *
 *   test_doc_keys docs/tlsshim.conf.5.scd */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "check.h"

#define MAX_ENTRIES 64

struct entry {
	char name[64];
	int section;    /* 'G' global keys, 'R' rules, 0 elsewhere */
	char body[4096]; /* the indented text under it */
};

static struct entry entries[MAX_ENTRIES];
static size_t nentries;

/* "*name* = ..." -> name, or 0. */
static int entry_name(const char *line, char *name, size_t len)
{
	size_t n = 0;

	if (line[0] != '*')
		return 0;
	for (line++; (*line >= 'a' && *line <= 'z') ||
	             (*line >= '0' && *line <= '9') || *line == '-';
	     line++)
		if (n + 1 < len)
			name[n++] = *line;
	name[n] = '\0';
	return n && !strncmp(line, "* = ", 4);
}

static void read_page(const char *path)
{
	char line[1024];
	int section = 0;
	size_t first_open = 0; /* entries still taking body lines */
	FILE *f = fopen(path, "r");

	if (!f) {
		perror(path);
		exit(2);
	}
	while (fgets(line, sizeof line, f)) {
		char name[64];
		if (!strncmp(line, "# ", 2)) {
			/* Client and server rules alike take rule keys. */
			section = !strncmp(line, "# GLOBAL KEYS", 13)   ? 'G' :
			          !strncmp(line, "# RULES", 7) ||
			          !strncmp(line, "# SERVER RULES", 14) ? 'R' :
			                                                  0;
			first_open = nentries;
		} else if (entry_name(line, name, sizeof name)) {
			/* Entries on consecutive lines share one body
			 * (client-cert and client-key). */
			if (nentries && first_open < nentries &&
			    entries[nentries - 1].body[0])
				first_open = nentries;
			CHECK(nentries < MAX_ENTRIES, "too many entries");
			if (nentries == MAX_ENTRIES)
				break;
			struct entry *e = &entries[nentries++];
			snprintf(e->name, sizeof e->name, "%s", name);
			e->section = section;
		} else if (line[0] == '\t') {
			for (size_t i = first_open; i < nentries; i++)
				strncat(entries[i].body, line,
				        sizeof entries[i].body -
				                strlen(entries[i].body) - 1);
		} else if (line[0] != '\n') {
			first_open = nentries;
		}
	}
	fclose(f);
}

static const struct entry *find(const char *name)
{
	for (size_t i = 0; i < nentries; i++)
		if (!strcmp(entries[i].name, name))
			return &entries[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const char *k;
	bool global;
	size_t i, nkeys = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: test_doc_keys tlsshim.conf.5.scd\n");
		return 2;
	}
	read_page(argv[1]);
	CHECK(nentries > 0, "no entries found in %s", argv[1]);

	/* Every key the parser accepts is documented where it belongs. */
	for (i = 0; (k = ts_policy_key(i, &global)); i++) {
		const struct entry *e = find(k);
		nkeys++;
		CHECK(e != NULL, "key '%s' is not in %s", k, argv[1]);
		if (!e)
			continue;
		CHECK(e->section == (global ? 'G' : 'R'),
		      "key '%s' is a %s key: document it under %s", k,
		      global ? "global" : "rule",
		      global ? "GLOBAL KEYS" : "RULES");
		CHECK(strstr(e->body, "Default") || strstr(e->body, "default") ||
		              strstr(e->body, "Required"),
		      "key '%s': its entry states no default", k);
		CHECK(strstr(e->body, "Example:") != NULL,
		      "key '%s': its entry has no example", k);
	}
	CHECK(nkeys > 0, "the parser lists no keys");

	/* Every entry is a key the parser accepts, in its scope. */
	for (i = 0; i < nentries; i++) {
		const struct entry *e = &entries[i];
		bool found = false;
		for (size_t j = 0; (k = ts_policy_key(j, &global)); j++)
			if (!strcmp(k, e->name)) {
				found = true;
				break;
			}
		CHECK(found, "%s documents '%s', which the parser does not "
		      "accept", argv[1], e->name);
		CHECK(e->section == 'G' || e->section == 'R',
		      "'%s' is documented outside GLOBAL KEYS and RULES",
		      e->name);
	}
	return check_summary();
}
