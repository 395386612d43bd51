/* mmtrustd's log: stderr with a timestamp in the foreground, syslog
 * (the journal under systemd) otherwise.  Log where the decision is taken,
 * with context (partner, reqid, SPI); lower layers return errors. */
#ifndef MMTRUSTD_LOG_H
#define MMTRUSTD_LOG_H

#include <syslog.h>

void log_open(int to_stderr, int verbose);
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
