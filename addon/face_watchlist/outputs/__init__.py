"""Where decisions go: MQTT messages now; Home Assistant discovery, Frigate sub_label and HA events next."""
