// SPDX-License-Identifier: GPL-3.0-or-later
// The pairing agent's policy as a pure function of (request, window open, bonded),
// and passkey formatting.
#include <gtest/gtest.h>

#include <set>

#include "bluez/agent.h"

namespace bzs::bluez {
namespace {

const AgentRequest kAll[] = {
    AgentRequest::Confirmation,   AgentRequest::Authorization, AgentRequest::Service,
    AgentRequest::Passkey,        AgentRequest::PinCode,       AgentRequest::DisplayPasskey,
    AgentRequest::DisplayPinCode,
};

TEST(AgentDecision, EverythingIsAcceptedWhileTheWindowIsOpen) {
    for (const AgentRequest r : kAll) {
        for (const bool bonded : {false, true}) {
            EXPECT_EQ(agent_decision(r, true, bonded), AgentVerdict::Accept)
                << agent_request_name(r) << " bonded=" << bonded;
        }
    }
}

TEST(AgentDecision, NothingIsAcceptedFromAnUnbondedDeviceWhileTheWindowIsClosed) {
    for (const AgentRequest r : kAll) {
        EXPECT_EQ(agent_decision(r, false, false), AgentVerdict::Reject) << agent_request_name(r);
    }
}

TEST(AgentDecision, ABondedDeviceReconnectingGetsItsServicesOutsideTheWindow) {
    EXPECT_EQ(agent_decision(AgentRequest::Service, false, true), AgentVerdict::Accept);
}

TEST(AgentDecision, ABondedDeviceCannotMakeANewBondOutsideTheWindow) {
    for (const AgentRequest r : kAll) {
        if (r == AgentRequest::Service) {
            continue;
        }
        EXPECT_EQ(agent_decision(r, false, true), AgentVerdict::Reject) << agent_request_name(r);
    }
}

TEST(AgentRequestName, NamesTheDBusMethods) {
    EXPECT_EQ(agent_request_name(AgentRequest::Confirmation), "RequestConfirmation");
    EXPECT_EQ(agent_request_name(AgentRequest::Authorization), "RequestAuthorization");
    EXPECT_EQ(agent_request_name(AgentRequest::Service), "AuthorizeService");
    EXPECT_EQ(agent_request_name(AgentRequest::Passkey), "RequestPasskey");
    EXPECT_EQ(agent_request_name(AgentRequest::PinCode), "RequestPinCode");
    EXPECT_EQ(agent_request_name(AgentRequest::DisplayPasskey), "DisplayPasskey");
    EXPECT_EQ(agent_request_name(AgentRequest::DisplayPinCode), "DisplayPinCode");
}

TEST(FormatPasskey, IsSixDigitsZeroPadded) {
    EXPECT_EQ(format_passkey(0), "000000");
    EXPECT_EQ(format_passkey(4711), "004711");
    EXPECT_EQ(format_passkey(999999), "999999");
}

TEST(RandomPasskey, StaysWithinSixDigitsAndVaries) {
    std::set<std::uint32_t> seen;
    for (int i = 0; i < 1000; ++i) {
        const std::uint32_t p = random_passkey();
        ASSERT_LT(p, 1000000U);
        seen.insert(p);
    }
    // 1000 draws from a million values: a constant or tiny range would show here.
    EXPECT_GT(seen.size(), 900U);
}

}  // namespace
}  // namespace bzs::bluez
