// SPDX-License-Identifier: GPL-3.0-or-later
// `bluezscript`: the owner's command line.
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/admin.h"
#include "cli/client.h"
#include "cli/owner.h"

namespace {

std::vector<std::string> split_csv(const std::string& s) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= s.size()) {
        const auto comma = s.find(',', start);
        std::string item =
            s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!item.empty()) {
            out.push_back(item);
        }
        if (comma == std::string::npos) {
            break;
        }
        start = comma + 1;
    }
    return out;
}

int run(int argc, char** argv) {
    using namespace bzs::cli;
    CLI::App app{"bluezscript: manage the phones paired with this Pi, its actions and audit log"};
    // Global options (--config, --json) may also follow the subcommand.
    app.fallthrough();
    app.require_subcommand(0, 1);
    app.set_version_flag("--version", "bluezscript 0.1.0");
    Common common;
    app.add_option("-c,--config", common.config_flag,
                   "configuration file (default: $BLUEZSCRIPT_CONFIG, else "
                   "/etc/bluezscript/bluezscript.toml)");
    app.add_flag("--json", common.json, "machine-readable output");
    int rc = 0;

    // --- pair ---
    auto* pair =
        app.add_subcommand("pair", "add, list, rename, revoke devices and set their permissions");
    pair->require_subcommand(0, 1);

    PairAddOptions add;
    std::string add_actions;
    auto* pa = pair->add_subcommand(
        "add", "add a device: prints a pairing link and QR code with a one-time code");
    pa->add_option("name", add.name, "a name for the device, e.g. alice-phone")->required();
    pa->add_option("--actions", add_actions, "comma-separated actions the device may run");
    pa->add_flag("--no-qr", add.no_qr, "print only the links");
    pa->add_flag("--plain-qr", add.ascii_qr, "QR code without terminal colours");
    pa->callback([&] {
        add.actions = split_csv(add_actions);
        rc = pair_add(common, add);
    });

    PairAddOptions code;
    auto* pcode = pair->add_subcommand(
        "code",
        "a new one-time code for a device that has not paired yet (the old one stops "
        "working)");
    pcode->add_option("device", code.name, "device name or id")->required();
    pcode->add_flag("--no-qr", code.no_qr, "print only the links");
    pcode->add_flag("--plain-qr", code.ascii_qr, "QR code without terminal colours");
    pcode->callback([&] { rc = pair_code(common, code); });

    bool list_active = false;
    auto* pl = pair->add_subcommand("list", "list devices: pending, active and revoked");
    pl->add_flag("--active", list_active, "hide revoked devices");
    pl->callback([&] { rc = pair_list(common, !list_active); });

    std::string dev;
    auto* pr =
        pair->add_subcommand("revoke", "revoke a device: its commands are refused from now on");
    pr->add_option("device", dev, "device name or id (prefix of at least 6 hex digits)")
        ->required();
    pr->callback([&] { rc = pair_revoke(common, dev); });

    std::string new_name;
    auto* pn = pair->add_subcommand("rename", "rename a device");
    pn->add_option("device", dev, "device name or id")->required();
    pn->add_option("new-name", new_name, "the new name")->required();
    pn->callback([&] { rc = pair_rename(common, dev, new_name); });

    std::vector<std::string> perm_actions;
    auto* pallow = pair->add_subcommand("allow", "let a device run more actions");
    pallow->add_option("device", dev, "device name or id")->required();
    pallow->add_option("actions", perm_actions, "action names")->required();
    pallow->callback([&] { rc = pair_allow(common, dev, perm_actions, true); });
    auto* pdeny = pair->add_subcommand("deny", "stop a device from running actions");
    pdeny->add_option("device", dev, "device name or id")->required();
    pdeny->add_option("actions", perm_actions, "action names")->required();
    pdeny->callback([&] { rc = pair_allow(common, dev, perm_actions, false); });

    // --- actions ---
    auto* act = app.add_subcommand("actions", "list the actions directory or test-run an action");
    act->require_subcommand(0, 1);
    act->add_subcommand("list", "list actions and any files that were skipped")->callback([&] {
        rc = actions_list(common);
    });
    std::string run_name;
    std::vector<std::string> run_args;
    auto* ar =
        act->add_subcommand("run", "run an action here, as the owner (recorded in the audit log)");
    ar->add_option("name", run_name, "action name")->required();
    ar->add_option("args", run_args, "arguments, if the action takes any");
    ar->callback([&] { rc = actions_run(common, run_name, run_args); });

    // --- log ---
    LogOptions log;
    bool only_ok = false;
    bool only_refused = false;
    auto* lg = app.add_subcommand("log", "show the audit log, newest first");
    lg->add_option("--device", log.device, "device name or id");
    auto* f_ok = lg->add_flag("--accepted", only_ok, "only commands that ran successfully");
    lg->add_flag("--refused", only_refused, "only refused or failed attempts")->excludes(f_ok);
    lg->add_option("--status", log.status,
                   "one status, e.g. bad_mac, replayed (see docs/protocol.md)");
    lg->add_option("--since", log.since, "YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS (UTC) or 30m, 2h, 7d");
    lg->add_option("-n,--limit", log.limit, "entries per page")->capture_default_str();
    lg->add_option("--page", log.page, "page number")->capture_default_str();
    lg->callback([&] {
        if (only_ok) {
            log.accepted = true;
        } else if (only_refused) {
            log.accepted = false;
        }
        rc = show_log(common, log);
    });

    // --- keys ---
    auto* keys = app.add_subcommand("keys", "manage the master key that encrypts device secrets");
    keys->require_subcommand(0, 1);
    keys->add_subcommand("rotate", "create a new master key and re-encrypt every secret with it")
        ->callback([&] { rc = keys_rotate(common); });

    // --- admin (the web UI) and status ---
    auto* admin = app.add_subcommand("admin", "the web UI's admin account");
    admin->require_subcommand(0, 1);
    PasswdOptions passwd;
    auto* ap = admin->add_subcommand(
        "passwd", "set the web UI's admin password (signs every web session out)");
    ap->add_flag("--stdin", passwd.from_stdin, "read the password from stdin (one line)");
    ap->callback([&] { rc = admin_passwd(common, passwd); });
    app.add_subcommand("status", "BLE state, web UI addresses, certificate fingerprint, devices")
        ->callback([&] { rc = status(common); });

    // --- client (this computer sends commands to a Pi) ---
    auto* client =
        app.add_subcommand("client", "pairings of this computer with Pis (to send commands)");
    client->require_subcommand(0, 1);
    ClientPairOptions cp;
    auto* cpair = client->add_subcommand(
        "pair", "pair this computer with a Pi using the link its owner gave you");
    cpair->add_option("link", cp.link,
                      "bluezscript://pair?v=2&... or the app URL; - or nothing reads it from "
                      "stdin (keeps the one-time code out of shell history)");
    cpair->add_option("--name", cp.name, "local name of the pairing (default: the Pi's name)");
    cpair->add_option("--adapter", cp.adapter,
                      "Bluetooth adapter, e.g. hci0 (default: the first powered one)");
    cpair->add_option("--timeout", cp.timeout, "seconds to find the Pi")->capture_default_str();
    cpair->add_flag("-q,--quiet", cp.quiet, "no progress messages on stderr");
    cpair->callback([&] { rc = client_pair(cp); });
    ClientActionsOptions ca;
    auto* cact = client->add_subcommand(
        "actions", "list the actions this computer may run on a Pi (asks the Pi over BLE)");
    cact->add_option("pi", ca.pi,
                     "pairing name, Pi name or Pi id prefix (default: the only pairing)");
    cact->add_option("--adapter", ca.adapter,
                     "Bluetooth adapter, e.g. hci0 (default: the first powered one)");
    cact->add_option("--timeout", ca.timeout, "seconds to find the Pi")->capture_default_str();
    cact->add_flag("-q,--quiet", ca.quiet, "no progress messages on stderr");
    cact->callback([&] {
        ca.json = common.json;
        rc = client_actions(ca);
    });
    client->add_subcommand("list", "list this computer's pairings (no secrets shown)")
        ->callback([&] { rc = client_list(common.json); });
    std::string remove_name;
    auto* crm = client->add_subcommand("remove", "delete a pairing from this computer");
    crm->add_option("name", remove_name, "pairing name, Pi name or Pi id prefix")->required();
    crm->callback([&] { rc = client_remove(remove_name); });

    // --- trigger ---
    TriggerCliOptions trig;
    auto* tr =
        app.add_subcommand("trigger", "run an action on a Pi over Bluetooth LE (docs/client.md)");
    tr->add_option("action", trig.action, "the action's name")->required();
    tr->add_option("--arg", trig.args, "an argument for the action (repeat for several)")
        ->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    tr->add_option("--pi", trig.pi,
                   "pairing name, Pi name or Pi id prefix (default: the only pairing)");
    tr->add_option("--adapter", trig.adapter,
                   "Bluetooth adapter, e.g. hci0 (default: the first powered one)");
    tr->add_option("--timeout", trig.timeout, "seconds to find the Pi")->capture_default_str();
    tr->add_option("--wait", trig.wait, "seconds to wait for the answer once the command is sent")
        ->capture_default_str();
    tr->add_flag("-q,--quiet", trig.quiet, "no progress messages on stderr");
    tr->callback([&] { rc = trigger(trig); });

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) {
            return app.exit(e);  // --help, --version
        }
        std::cerr << "bluezscript: " << e.what() << "\nRun with --help for more information.\n";
        return 2;
    }
    // A group without its subcommand: say so and show what it offers. (Required
    // subcommands are checked here so that a mistyped one is reported by name.)
    for (CLI::App* group : {&app, pair, act, keys, client, admin}) {
        if (group->parsed() && group->get_subcommands().empty()) {
            std::cerr << "bluezscript: a subcommand is required\n" << group->help();
            return 2;
        }
    }
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    // Each command reports its own errors; this catches what escapes them, so the
    // owner reads a message instead of an abort.
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "bluezscript: " << e.what() << "\n";
        return 1;
    } catch (...) {
        std::cerr << "bluezscript: unexpected error\n";
        return 1;
    }
}
