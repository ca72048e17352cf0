// SPDX-License-Identifier: GPL-3.0-or-later
#include "service/command_service.h"

#include <algorithm>
#include <utility>

namespace bzs::service {

namespace {

// The response echoes what the client needs to match it to its request: the
// counter and the first bytes of the request MAC, as sent.
core::protocol::Response response_for(const std::optional<core::protocol::Request>& request) {
    core::protocol::Response r;
    if (request) {
        r.counter = request->counter;
        std::copy_n(request->mac.begin(), core::protocol::kTagLen, r.tag.begin());
    }
    return r;
}

}  // namespace

CommandService::CommandService(store::Store& store,
                               std::shared_ptr<const actions::Registry> registry,
                               actions::Runner& runner, core::auth::Policy policy, Clock clock)
    : store_(store),
      registry_(std::move(registry)),
      runner_(runner),
      policy_(policy),
      clock_(std::move(clock)) {}

void CommandService::set_registry(std::shared_ptr<const actions::Registry> registry) {
    registry_ = std::move(registry);
}

void CommandService::handle(core::protocol::ByteView frame, const CommandContext& ctx,
                            const Reply& reply) {
    store::AuthorizeRequest req;
    req.frame = frame;
    req.now = clock_();
    req.expected_challenge = ctx.challenge;
    req.transport = ctx.transport;
    req.actions = registry_->lookup();
    req.policy = policy_;
    store::Authorization auth = store_.authorize(req);

    core::protocol::Response resp = response_for(auth.request);
    CommandOutcome outcome;
    outcome.status = auth.decision.status;
    outcome.detail = auth.decision.detail;
    if (auth.device) {
        outcome.device_name = auth.device->name;
    }
    if (!auth.decision.accepted()) {
        if (auth.request) {
            outcome.action = auth.request->action;
        }
        resp.status = auth.decision.status;
        resp.output = std::string(core::protocol::status_message(auth.decision.status));
        reply(core::protocol::encode_response(resp, auth.response_key.view()), outcome);
        return;
    }

    const core::protocol::Request& request = *auth.decision.request;
    outcome.action = request.action;
    if (!ctx.address.empty() && auth.device) {
        // Kept so that revoking the device can remove its BLE bond (docs/ble.md).
        try {
            store_.set_device_address(auth.device->id, ctx.address);
        } catch (const std::exception&) {
            // The command runs regardless; the next accepted one records it.
        }
    }
    const actions::Action* action = registry_->find(request.action);
    // The verifier saw the same registry, so the action exists; re-checked because
    // a reload could in principle sit between the two.
    auto finish = [this, resp, outcome, key = auth.response_key, audit_id = auth.audit_id,
                   reply](const actions::RunResult& result) mutable {
        const core::protocol::Status st = actions::to_protocol_status(result.status);
        try {
            const bool ran = result.status == actions::RunStatus::Ok ||
                             result.status == actions::RunStatus::Failed ||
                             result.status == actions::RunStatus::Timeout;
            store_.complete_audit(audit_id, st,
                                  ran ? std::optional<int>(result.exit_code) : std::nullopt,
                                  result.duration_ms, clock_());
        } catch (const std::exception&) {
            // The action already ran; the row stays "running" and the reply still goes out.
        }
        resp.status = st;
        resp.exit_code = result.exit_code;
        resp.output = result.status == actions::RunStatus::Ok ||
                              result.status == actions::RunStatus::Failed ||
                              result.status == actions::RunStatus::Timeout
                          ? result.output
                          : result.error;
        outcome.status = st;
        reply(core::protocol::encode_response(resp, key.view()), outcome);
    };
    if (action == nullptr) {
        actions::RunResult missing;
        missing.status = actions::RunStatus::StartFailed;
        missing.error = "the action disappeared before it could start";
        finish(missing);
        return;
    }
    actions::RunContext rc;
    rc.device_name = auth.device ? auth.device->name : std::string();
    rc.device_id_hex = auth.device ? auth.device->id_hex : std::string();
    rc.request_id = auth.request_id;
    rc.transport = ctx.transport;
    auto started = runner_.start(*action, request.args, rc, finish);
    if (!started) {
        finish(started.refusal);
    }
}

}  // namespace bzs::service
