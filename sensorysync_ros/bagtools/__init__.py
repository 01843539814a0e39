"""Rosbag tools: offline evaluation, replay, dataset extraction."""
