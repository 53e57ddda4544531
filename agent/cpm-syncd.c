/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdio.h>

#include <cpmsync/cpmsync.h>

int main(void)
{
	printf("cpm-syncd %s\n", cpmsync_version());
	return 0;
}
