import PluginMain

// The per-pod binary: everything is in PluginMain (a library, so a test executable can run the same edge).
PluginMain.run()
