from kubelet_sim.main import main

main()
