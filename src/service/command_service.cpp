// SPDX-License-Identifier: GPL-3.0-or-later
#include "service/command_service.h"

#include <algorithm>

#include <utility>
#include "core/protocol/catalogue.h"
#include "core/protocol/pair_exchange.h"
#include "core/protocol/sealed.h"

namespace bzs::service {

namespace {

core::protocol::SealNonce fresh_nonce() {
    core::protocol::SealNonce n{};
    core::crypto::random_bytes(n);
    return n;
}

// The counter a refusal echoes: the request's, when its header decoded.
std::uint64_t counter_of(const core::auth::Decision& d) {
    return d.header ? d.header->counter : 0;
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
    // No request was trusted, so nothing is echoed and nothing is sealed.
    CommandOutcome outcome;
    outcome.status = core::protocol::Status::RateLimited;
    outcome.detail = why;
    outcome.summarised = true;
    reply(core::protocol::encode_refusal(0, outcome.status), outcome);
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
    req.system_now = system;
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

    CommandOutcome outcome;
    outcome.status = dec.status;
    outcome.detail = dec.detail;
    if (dec.header) {
        switch (dec.header->type) {
            case core::protocol::RequestType::Command:
                outcome.kind = RequestKind::Command;
                break;
            case core::protocol::RequestType::Catalogue:
                outcome.kind = RequestKind::Catalogue;
                break;
            case core::protocol::RequestType::Pair:
                outcome.kind = RequestKind::Pair;
                break;
        }
    }
    if (auth.device) {
        outcome.device_name = auth.device->name;
    }
    if (dec.command) {
        outcome.action = dec.command->action;
    }
    if (dec.clock_advanced_to && dec.status != core::protocol::Status::Internal) {
        outcome.clock_advanced_by = vclock_.advance_to(*dec.clock_advanced_to, system);
    }
    if (dec.accepted() && !dec.pair) {
        vclock_.note_accepted(dec.verified_at);
    }
    const std::uint64_t counter = counter_of(dec);
    if (auth.response_key.empty()) {
        // The sender did not authenticate: a plain refusal, nothing sealed.
        reply(core::protocol::encode_refusal(counter, dec.status), outcome);
        return;
    }
    const core::protocol::SealTag tag = core::protocol::request_tag(frame);
    auto head = [this](core::protocol::Status st) {
        const ClockReading c = clock();
        return core::protocol::ResponseHead{st, c.now, c.synchronized};
    };
    const std::string refusal(core::protocol::status_message(dec.status));
    if (outcome.kind == RequestKind::Pair) {
        std::optional<core::protocol::Confirm> confirm;
        std::string message = refusal;
        if (dec.pair) {
            confirm = dec.pair->confirm;
            message = "paired as " + outcome.device_name;
        }
        reply(
            core::protocol::seal_response(core::protocol::ResponseType::PairResult, counter, tag,
                                          fresh_nonce(), auth.response_key.view(), head(dec.status),
                                          core::protocol::pair_result_rest(confirm, message)),
            outcome);
        return;
    }
    if (outcome.kind == RequestKind::Catalogue) {
        core::protocol::Bytes rest;
        if (dec.accepted()) {
            const auto entries = registry_->catalogue(auth.device ? auth.device->actions
                                                                  : std::vector<std::string>{});
            rest = core::protocol::encode_catalogue_page(entries, dec.catalogue->first);
            outcome.detail = "catalogue: " + std::to_string(entries.size()) + " actions";
        } else {
            rest.assign(refusal.begin(), refusal.end());
        }
        reply(core::protocol::seal_response(core::protocol::ResponseType::CatalogueResult, counter,
                                            tag, fresh_nonce(), auth.response_key.view(),
                                            head(dec.status), rest),
              outcome);
        return;
    }
    if (!dec.accepted()) {
        reply(core::protocol::seal_command_result(counter, tag, fresh_nonce(),
                                                  auth.response_key.view(), head(dec.status), 0,
                                                  refusal),
              outcome);
        return;
    }

    const core::protocol::CommandBody& request = *dec.command;
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
    auto finish = [this, counter, tag, outcome, key = auth.response_key, audit_id = auth.audit_id,
                   reply, head](const actions::RunResult& result) mutable {
        const core::protocol::Status st = actions::to_protocol_status(result.status);
        const bool ran = result.status == actions::RunStatus::Ok ||
                         result.status == actions::RunStatus::Failed ||
                         result.status == actions::RunStatus::Timeout;
        try {
            store_.complete_audit(audit_id, st,
                                  ran ? std::optional<int>(result.exit_code) : std::nullopt,
                                  result.duration_ms, clock().now);
        } catch (const std::exception&) {
            // The action already ran; the row stays "running" and the reply still goes out.
        }
        outcome.status = st;
        reply(core::protocol::seal_command_result(counter, tag, fresh_nonce(), key.view(), head(st),
                                                  ran ? result.exit_code : 0,
                                                  ran ? result.output : result.error),
              outcome);
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
