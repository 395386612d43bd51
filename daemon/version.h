/* The version both sockets report (mmtrustd.c, query.c). */
#ifndef MM_VERSION_H
#define MM_VERSION_H

#define MMTRUST_VERSION "0.1.0"

#endif
