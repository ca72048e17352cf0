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

// The label of frames that came without a link (not over BLE).
constexpr const char* kNoLink = "(no link)";

CommandService::CommandService(store::Store& store,
                               std::shared_ptr<const actions::Registry> registry,
                               actions::Runner& runner, core::auth::Policy policy, Clock clock,
                               SyncProbe synchronized)
    : store_(store),
      registry_(std::move(registry)),
      runner_(runner),
      policy_(policy),
      clock_(std::move(clock)),
      synchronized_(synchronized ? std::move(synchronized) : SyncProbe([] { return true; })),
      throttle_(policy.limits),
      vclock_(store.clock_floor()) {}

ClockReading CommandService::clock() {
    ClockReading r;
    r.synchronized = synchronized_();
    r.now = vclock_.read(clock_(), r.synchronized);
    r.offset = vclock_.offset();
    return r;
}

void CommandService::refuse_cheaply(const std::string& why, const Reply& reply) {
    // No request was trusted, so nothing is echoed and nothing is MACed.
    core::protocol::Response resp;
    resp.status = core::protocol::Status::RateLimited;
    resp.output = std::string(core::protocol::status_message(resp.status));
    CommandOutcome outcome;
    outcome.status = resp.status;
    outcome.detail = why;
    outcome.summarised = true;
    reply(core::protocol::encode_response(resp, {}), outcome);
}

std::vector<FlushedSummary> CommandService::flush(bool all) {
    std::vector<FlushedSummary> out;
    try {
        const std::int64_t system = clock_();
        const auto summaries = throttle_.take_summaries(system, all);
        if (summaries.empty()) {
            return out;
        }
        const std::int64_t v = vclock_.read(system, synchronized_());
        for (const auto& s : summaries) {
            FlushedSummary f;
            f.detail = s.detail();
            try {
                store_.audit_event("ble", std::nullopt, "", core::protocol::Status::RateLimited,
                                   f.detail, v);
            } catch (const std::exception& e) {
                f.error = e.what();
            }
            out.push_back(std::move(f));
        }
    } catch (const std::exception& e) {
        out.push_back({"rate limit summaries", std::string(e.what())});
    }
    return out;
}

void CommandService::set_registry(std::shared_ptr<const actions::Registry> registry) {
    registry_ = std::move(registry);
}

CommandService::BadWrite CommandService::bad_write(const std::string& link_id,
                                                   const std::string& peer,
                                                   const std::string& detail) {
    const std::string link = link_id.empty() ? std::string(kNoLink) : link_id;
    const std::int64_t system = clock_();
    if (throttle_.link_limited(link, system)) {
        throttle_.record_link_refusal(link, system);
        return BadWrite::Summarised;
    }
    const bool pi_wide = throttle_.pi_wide_limited(system);
    throttle_.record_failure(link, system);
    if (pi_wide) {
        throttle_.record_pi_wide_refusal(system);
        return BadWrite::Summarised;
    }
    try {
        store_.audit_event("ble", std::nullopt, "", core::protocol::Status::Malformed,
                           detail + " (from " + peer + ")", vclock_.read(system, synchronized_()));
        return BadWrite::Audited;
    } catch (const std::exception&) {
        return BadWrite::AuditFailed;
    }
}

void CommandService::handle(core::protocol::ByteView frame, const CommandContext& ctx,
                            const Reply& reply) {
    const std::string link = ctx.link.empty() ? std::string(kNoLink) : ctx.link;
    const std::int64_t system = clock_();
    // The cheap path: no decoding, no database.
    if (throttle_.link_limited(link, system)) {
        throttle_.record_link_refusal(link, system);
        refuse_cheaply("this link sent more than " +
                           std::to_string(policy_.limits.link_max_failures_per_minute) +
                           " unauthenticated frames in a minute",
                       reply);
        return;
    }
    // Under the Pi-wide limit only a frame that authenticates (read-only check)
    // goes on; the rest are refused without a write.
    if (throttle_.pi_wide_limited(system) && !store_.authenticates(frame)) {
        throttle_.record_pi_wide_refusal(system);
        throttle_.record_failure(link, system);
        refuse_cheaply("the Pi-wide limit on unauthenticated frames is on", reply);
        return;
    }

    const bool synced = synchronized_();
    store::AuthorizeRequest req;
    req.frame = frame;
    req.now = vclock_.read(system, synced);
    req.clock_synchronized = synced;
    req.expected_challenge = ctx.challenge;
    req.transport = ctx.transport;
    req.actions = registry_->lookup();
    req.policy = policy_;
    store::Authorization auth = store_.authorize(req);
    const core::auth::Decision& dec = auth.decision;
    if (core::auth::counts_against_limits(dec.status)) {
        throttle_.record_failure(link, system);
    }

    core::protocol::Response resp = response_for(auth.request);
    CommandOutcome outcome;
    outcome.status = auth.decision.status;
    outcome.detail = auth.decision.detail;
    if (auth.device) {
        outcome.device_name = auth.device->name;
    }
    if (dec.clock_advanced_to && dec.status != core::protocol::Status::Internal) {
        outcome.clock_advanced_by = vclock_.advance_to(*dec.clock_advanced_to, system);
    }
    if (dec.accepted()) {
        vclock_.note_accepted(dec.verified_at);
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
                                  result.duration_ms, clock().now);
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
