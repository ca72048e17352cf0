// SPDX-License-Identifier: GPL-3.0-or-later
// One command, end to end, independent of the transport: authorise the frame
// (state and audit committed first), run the action, complete the audit row and
// hand back a MACed response frame. BLE, tests and benchmarks all go through it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "actions/registry.h"
#include "actions/runner.h"
#include "core/auth/verifier.h"
#include "core/protocol/protocol.h"
#include "store/store.h"

namespace bzs::service {

/// What the transport knows about the sender.
struct CommandContext {
    std::string transport = "ble";
    std::optional<core::protocol::Nonce> challenge;  ///< live challenge issued to this link
    /// The sender's BLE address ("AA:BB:CC:DD:EE:FF"), empty when unknown; stored
    /// as the device's address when its command is accepted (bond removal on revoke).
    std::string address;
};

/// What happened, for the transport's log line (never contains secrets).
struct CommandOutcome {
    core::protocol::Status status = core::protocol::Status::Malformed;
    std::string action;
    std::string device_name;
    std::string detail;
};

class CommandService {
  public:
    using Clock = std::function<std::int64_t()>;
    /// Receives the encoded response frame, exactly once per handled command.
    using Reply =
        std::function<void(const core::protocol::Bytes& response, const CommandOutcome& outcome)>;

    CommandService(store::Store& store, std::shared_ptr<const actions::Registry> registry,
                   actions::Runner& runner, core::auth::Policy policy, Clock clock);

    /// Replaces the actions (after SIGHUP); running actions are not affected.
    void set_registry(std::shared_ptr<const actions::Registry> registry);

    /// Authorises and, if accepted, starts the action. `reply` is called at once
    /// for refusals and when the action ends otherwise.
    void handle(core::protocol::ByteView frame, const CommandContext& ctx, const Reply& reply);

  private:
    store::Store& store_;
    std::shared_ptr<const actions::Registry> registry_;
    actions::Runner& runner_;
    core::auth::Policy policy_;
    Clock clock_;
};

}  // namespace bzs::service
