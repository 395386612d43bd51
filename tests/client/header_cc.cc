// mmtrust.h from C++ (a C++ SIP server's module): compiled with -Wall
// -Wextra -pedantic -Werror by tests/client/test_package.sh, linked and run
// against the installed shared library.
#include <mmtrust.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

int main()
{
	struct mmtrust *m = nullptr;
	struct mmtrust_answer a;
	int r = mmtrust_connect("/nonexistent/mmtrust-header-cc.sock", 100, &m);

	if (r != -ENOENT || m != nullptr)
		return 1;
	r = mmtrust_inbound(m, "192.0.2.1", nullptr, 0, &a);
	std::printf("%d %d %s %s\n", r, a.pai, a.reason, a.source);
	return r == -ENOTCONN && a.pai == MMTRUST_PAI_STRIP && std::strcmp(a.source, "error") == 0 ? 0 : 1;
}
