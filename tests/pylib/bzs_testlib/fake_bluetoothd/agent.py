# SPDX-License-Identifier: GPL-3.0-or-later
"""Agents: org.bluez.AgentManager1 and the registered agents."""

import dbus
import dbus.service

from .constants import AGENT_CAPABILITIES, AGENT_MANAGER_IFACE, BLUEZ_PATH
from .helpers import err_already_exists, err_does_not_exist, err_invalid_args
from .objects import ExportedObject


class Agent:
    """A registered org.bluez.Agent1 (one per D-Bus connection, src/agent.c)."""

    def __init__(self, owner, path, capability):
        self.owner = owner
        self.path = path
        self.capability = capability


class AgentManager(ExportedObject):
    """/org/bluez: org.bluez.AgentManager1."""

    def __init__(self, fake):
        super().__init__(fake, BLUEZ_PATH)
        self.props = {AGENT_MANAGER_IFACE: {}}

    @dbus.service.method(AGENT_MANAGER_IFACE, in_signature="os", out_signature="",
                         sender_keyword="sender")
    def RegisterAgent(self, path, capability, sender=None):
        if sender in self.fake.agents:
            raise err_already_exists()
        if str(capability) not in AGENT_CAPABILITIES:
            raise err_invalid_args()
        self.fake.agents[sender] = Agent(sender, str(path), AGENT_CAPABILITIES[str(capability)])

    @dbus.service.method(AGENT_MANAGER_IFACE, in_signature="o", out_signature="",
                         sender_keyword="sender")
    def UnregisterAgent(self, path, sender=None):
        agent = self.fake.agents.get(sender)
        if agent is None or agent.path != str(path):
            raise err_does_not_exist()
        self.fake.drop_agent(agent)

    @dbus.service.method(AGENT_MANAGER_IFACE, in_signature="o", out_signature="",
                         sender_keyword="sender")
    def RequestDefaultAgent(self, path, sender=None):
        agent = self.fake.agents.get(sender)
        if agent is None or agent.path != str(path):
            raise err_does_not_exist()
        # The most recent request becomes the default; earlier ones are the
        # fall-backs when it goes away (default_agents queue of src/agent.c).
        if agent in self.fake.default_agents:
            self.fake.default_agents.remove(agent)
        self.fake.default_agents.insert(0, agent)
