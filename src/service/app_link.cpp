// SPDX-License-Identifier: GPL-3.0-or-later
#include "service/app_link.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <climits>
#include <regex>

namespace bzs::service {

namespace {

bool is_loopback_host(std::string_view host) {
    return host == "localhost" || host.ends_with(".localhost") || host.starts_with("127.") ||
           host == "[::1]";
}

/// Splits "host[:port]" / "[v6][:port]" into host and port ("" when absent).
std::pair<std::string, std::string> split_host(std::string_view hp) {
    if (!hp.empty() && hp.front() == '[') {
        const auto close = hp.find(']');
        const auto rest = hp.substr(close + 1);
        return {std::string(hp.substr(0, close + 1)),
                rest.starts_with(":") ? std::string(rest.substr(1)) : std::string()};
    }
    const auto colon = hp.find(':');
    if (colon == std::string_view::npos) {
        return {std::string(hp), ""};
    }
    return {std::string(hp.substr(0, colon)), std::string(hp.substr(colon + 1))};
}

}  // namespace

bool valid_host_header(std::string_view host) {
    static const std::regex name(R"(^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})(:[0-9]{1,5})?$)");
    static const std::regex v6(R"(^\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?$)");
    if (host.empty() || host.size() > 262) {
        return false;
    }
    const std::string h(host);
    return std::regex_match(h, name) || std::regex_match(h, v6);
}

std::string machine_host() {
    std::array<char, HOST_NAME_MAX + 1> buf{};
    if (gethostname(buf.data(), buf.size() - 1) != 0 || buf[0] == '\0') {
        return "raspberrypi.local";
    }
    std::string h(buf.data());
    if (!valid_host_header(h)) {
        return "raspberrypi.local";
    }
    return h.find('.') == std::string::npos ? h + ".local" : h;
}

std::string self_app_url(const config::Config& cfg, std::string_view https_host) {
    const auto& w = cfg.web;
    if (!w.enabled || w.https_address.empty()) {
        return "";
    }
    std::string host;
    std::string port;
    if (!https_host.empty() && valid_host_header(https_host)) {
        std::tie(host, port) = split_host(https_host);
        if (is_loopback_host(host)) {
            host.clear();
            port.clear();
        }
    }
    if (host.empty()) {
        const bool any = w.https_address == "0.0.0.0" || w.https_address == "::";
        const bool loop = is_loopback_host(w.https_address) || w.https_address == "::1";
        if (!any && !loop) {
            host = w.https_address.find(':') != std::string::npos ? "[" + w.https_address + "]"
                                                                  : w.https_address;
        } else {
            host = machine_host();
        }
    }
    if (port.empty() && w.https_port != 443) {
        port = std::to_string(w.https_port);
    }
    return "https://" + host + (port.empty() ? "" : ":" + port) + std::string(kAppPath);
}

std::string app_pairing_link(const core::protocol::PairingLink& link, const config::Config& cfg,
                             std::string_view https_host) {
    const std::string app =
        cfg.pairing.app_url.empty() ? self_app_url(cfg, https_host) : cfg.pairing.app_url;
    return app.empty() ? std::string() : core::protocol::link_to_app_url(link, app);
}

}  // namespace bzs::service
