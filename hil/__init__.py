"""Hardware-in-the-loop over Modbus.

Modules (``hil`` never imports ``cosim``):

* :mod:`hil.registers` - register maps as data (``hil/maps/*.yaml`` or a user YAML with the same
  schema) loaded into pydantic models; codec values <-> registers; :class:`RegisterImage`.
  Bundled maps: ``sdm630`` (Eastron, FC4 float32 big-endian), ``em24`` (Carlo Gavazzi, int32
  low word first, fixed weights), ``sunspec_meter`` (SunS + models 1, 203, end),
  ``sunspec_battery`` (SunS + models 1, 802, 704 with the WSet reversion timer, end).
* :mod:`hil.sunspec` - SunSpec model layouts from pysunspec2's official model JSON, and the
  model-chain scan (``SunS`` -> id/L headers -> 0xFFFF) the client uses to find a device's models.
* :mod:`hil.device_server` - :class:`DeviceServer`: simulated devices served as Modbus TCP /
  RTU-over-TCP / TLS / serial RTU devices (one unit id per device); ``update()``, ``pop_writes()``; range and
  access checks (exception 3 / 2); set-point reversion from the map's ``setpoints`` spec.
* :mod:`hil.modbus_server` - pymodbus server glue: requests checked before decoding (exception
  responses = request code + 0x80), bad frames logged once per connection, idle timeout and
  connection limit; Modbus/TCP, RTU over TCP, TLS and serial RTU.
* :mod:`hil.device_server_sim` - mosaik simulator ``DeviceServerSim``, model ``DeviceServer``.
* :mod:`hil.emulator` - lab-device emulator (``sdm630 | em24 | sunspec-meter | sunspec-battery``)
  = DeviceServer + physics model; asyncio API and ``main(argv)`` CLI (``cosim emulate``).
* :mod:`hil.meter_adapter` - mosaik simulator ``ModbusMeters``: polls meters asynchronously,
  outputs ``P Q E_imp E_exp P_15 quality age``.
* :mod:`hil.gateway_adapter` - mosaik simulator ``ModbusGateways``: writes set points with the
  device revert timer, reads back ``P_bat soc setpoint_ack ...``.
* :mod:`hil.realtime` - ``lateness_stats()`` and the ``RealtimeMonitor`` mosaik simulator.
* :mod:`hil.client` (shared Modbus client side), :mod:`hil.aio` (background asyncio loop),
  :mod:`hil.testing` (emulators in a thread, test TLS certificate, linked pty pair for serial).

Every listener binds 127.0.0.1 unless told otherwise. Timers (polling, staleness, reversion)
are wall-clock: HIL runs are real-time runs.
"""
