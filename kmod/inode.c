// SPDX-License-Identifier: GPL-2.0
/*
 * tiermem's own inode. Every open file of /dev/tiermem (whatever device node
 * it came through) uses this inode's address_space, so all mappings of a
 * region hang off one interval tree, keyed by the region's mmap offsets, and
 * unmap_mapping_range() can take them all away when the memory under them
 * must go (namespace removal, poison).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/magic.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/pseudo_fs.h>

#include "tiermem.h"

#define TM_FS_MAGIC	0x544d4653	/* "TMFS" */

static struct vfsmount *tm_mnt;
static struct inode *tm_inode;

static int tm_fs_init_fs_context(struct fs_context *fc)
{
	return init_pseudo(fc, TM_FS_MAGIC) ? 0 : -ENOMEM;
}

/* No .owner: the mount would hold the module it is unmounted by. */
static struct file_system_type tm_fs_type = {
	.name = "tiermem",
	.init_fs_context = tm_fs_init_fs_context,
	.kill_sb = kill_anon_super,
};

int tm_inode_init(void)
{
	tm_mnt = kern_mount(&tm_fs_type);
	if (IS_ERR(tm_mnt))
		return PTR_ERR(tm_mnt);
	tm_inode = alloc_anon_inode(tm_mnt->mnt_sb);
	if (IS_ERR(tm_inode)) {
		kern_unmount(tm_mnt);
		return PTR_ERR(tm_inode);
	}
	return 0;
}

void tm_inode_exit(void)
{
	iput(tm_inode);
	kern_unmount(tm_mnt);
}

/* At open, before any mmap of @file. */
void tm_inode_use(struct file *file)
{
	file->f_mapping = tm_inode->i_mapping;
}

/* Every page table entry mapping @r's data, in every process. */
void tm_zap_region(struct tm_region *r)
{
	unmap_mapping_range(tm_inode->i_mapping, tm_region_offset(r), r->size,
			    1);
}
