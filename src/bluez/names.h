// SPDX-License-Identifier: GPL-3.0-or-later
// The D-Bus names BlueZscript uses, in one place (BlueZ 5.66 doc/*-api.txt).
#pragma once

namespace bzs::bluez::names {

// D-Bus itself
inline constexpr const char* kDBusName = "org.freedesktop.DBus";
inline constexpr const char* kObjectManagerIface = "org.freedesktop.DBus.ObjectManager";
inline constexpr const char* kPropertiesIface = "org.freedesktop.DBus.Properties";

// BlueZ service and interfaces
inline constexpr const char* kBluez = "org.bluez";
inline constexpr const char* kAdapterIface = "org.bluez.Adapter1";
inline constexpr const char* kDeviceIface = "org.bluez.Device1";
inline constexpr const char* kServiceIface = "org.bluez.GattService1";
inline constexpr const char* kChrcIface = "org.bluez.GattCharacteristic1";
inline constexpr const char* kGattManagerIface = "org.bluez.GattManager1";
inline constexpr const char* kAdvManagerIface = "org.bluez.LEAdvertisingManager1";
inline constexpr const char* kAgentManagerIface = "org.bluez.AgentManager1";
inline constexpr const char* kAgentIface = "org.bluez.Agent1";

// BlueZ errors
inline constexpr const char* kErrRejected = "org.bluez.Error.Rejected";
inline constexpr const char* kErrFailed = "org.bluez.Error.Failed";
inline constexpr const char* kErrNotPermitted = "org.bluez.Error.NotPermitted";
inline constexpr const char* kErrNotAuthorized = "org.bluez.Error.NotAuthorized";
inline constexpr const char* kErrInvalidOffset = "org.bluez.Error.InvalidOffset";
inline constexpr const char* kErrInvalidValueLength = "org.bluez.Error.InvalidValueLength";
inline constexpr const char* kErrAlreadyExists = "org.bluez.Error.AlreadyExists";
inline constexpr const char* kErrDoesNotExist = "org.bluez.Error.DoesNotExist";

}  // namespace bzs::bluez::names
