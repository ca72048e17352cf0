// SPDX-License-Identifier: GPL-3.0-or-later
// A dbus-daemon of the test's own, on a socket in a temporary folder: for tests
// that export or mirror D-Bus objects without touching the system bus.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <stdexcept>
#include <string>

#include "test_support.h"

namespace bzs::test {

// A dbus-daemon of our own, on a socket in a temporary folder.
class PrivateBus {
  public:
    PrivateBus() {
        const std::string config = (dir_ / "bus.conf").string();
        write_file(config,
                   "<busconfig><type>session</type><listen>unix:path=" + (dir_ / "bus").string() +
                       "</listen><auth>EXTERNAL</auth><policy context=\"default\">"
                       "<allow send_destination=\"*\" eavesdrop=\"true\"/>"
                       "<allow eavesdrop=\"true\"/><allow own=\"*\"/>"
                       "</policy></busconfig>");
        int fds[2];
        if (::pipe(fds) != 0) {
            throw std::runtime_error("pipe");
        }
        pid_ = ::fork();
        if (pid_ == 0) {
            ::close(fds[0]);
            const std::string print = "--print-address=" + std::to_string(fds[1]);
            ::execlp("dbus-daemon", "dbus-daemon", "--nofork", "--nopidfile",
                     ("--config-file=" + config).c_str(), print.c_str(),
                     static_cast<char*>(nullptr));
            ::_exit(127);
        }
        ::close(fds[1]);
        char buf[512];
        std::string line;
        ssize_t n = 0;
        while (line.find('\n') == std::string::npos && (n = ::read(fds[0], buf, sizeof buf)) > 0) {
            line.append(buf, static_cast<std::size_t>(n));
        }
        ::close(fds[0]);
        address_ = line.substr(0, line.find('\n'));
    }
    ~PrivateBus() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    PrivateBus(const PrivateBus&) = delete;
    PrivateBus& operator=(const PrivateBus&) = delete;
    [[nodiscard]] const std::string& address() const { return address_; }

  private:
    TempDir dir_;
    pid_t pid_ = -1;
    std::string address_;
};

}  // namespace bzs::test
