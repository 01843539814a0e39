"""SensorySync ROS runtime: manifest, codecs, engine, fusion core, node, bag tools, simulator.

This package never imports torch: robots run it without torch installed.
"""

__version__ = "0.1.0"
