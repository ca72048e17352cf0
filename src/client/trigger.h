// SPDX-License-Identifier: GPL-3.0-or-later
// The client side of BLE: `bluezscript trigger` as a GATT central of BlueZ over
// D-Bus (sd-bus on the caller's sd-event loop; no threads, no polling, never raw
// HCI). One Trigger finds the Pi of a pairing (or of a pairing link) and runs one
// exchange (a command, the catalogue, or the pairing itself):
//
//   adapter (--adapter, else the first powered one)
//   -> scan for the BlueZscript service (LE, UUID filter) in 5 s windows until the
//      timeout; devices already known and recently seen count too
//   -> connect (3 attempts), wait for ServicesResolved, find the service and its
//      four characteristics
//   -> Exchange (exchange.h): Info check, bonding when the Pi requires it
//      (with a KeyboardDisplay agent registered for the duration), challenge,
//      request, response
//   -> StopNotify, and Disconnect when this run made the connection.
//
// A device that turns out to be another Pi (its Info names another id) is left and
// the scan goes on.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "client/exchange.h"
#include "loop/event_loop.h"

namespace bzs::client {

struct TriggerOptions {
    /// "hciN"; empty = the first powered adapter.
    std::string adapter;
    /// Finding the Pi (scanning) gives up after this long.
    std::chrono::seconds scan_timeout{20};
    /// Answer timing (response timeout, Result read fallback).
    ExchangeTiming timing;
    /// Bus address ("unix:path=..."); empty = the system bus, which honours
    /// $DBUS_SYSTEM_BUS_ADDRESS.
    std::string bus_address;
};

class Trigger {
  public:
    /// `hooks` are passed to the Exchange (counter, pairing store, clock, notices).
    Trigger(loop::EventLoop& loop, ExchangeRequest request, TriggerOptions options,
            ExchangeHooks hooks);
    ~Trigger();
    Trigger(const Trigger&) = delete;
    Trigger& operator=(const Trigger&) = delete;

    /// Starts; progress happens on the loop until done() is true.
    void start();
    /// Stops early (SIGINT): cleans up, then ends with TriggerExit::Interrupted.
    void cancel();
    /// True once the outcome is final and BlueZ has been tidied up (or that timed out).
    [[nodiscard]] bool done() const;
    /// The outcome; valid once done().
    [[nodiscard]] const ExchangeOutcome& outcome() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace bzs::client
