"""A task module that fails to import, as one with a missing setting would."""
raise RuntimeError('chaos: the settings file /etc/badinput.conf is missing')
