"""The task: what the user asks for (instruction, demos, labels), how task files
are read, THE prompt a task input is shown as, and how model output is parsed back.

It does not run models, write runs or synthesize data.
"""
